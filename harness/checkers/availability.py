"""Availability: outcome counts per ``f`` and the windows when an ``f`` was failing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from harness.history import Op

DEFAULT_FS: Final = ("write", "read")


def counts(ops: Sequence[Op]) -> dict[str, dict[str, int]]:
    """``{f: {"ok": n, "fail": n, "info": n}}`` over completions (faults excluded)."""
    out: dict[str, dict[str, int]] = {}
    for op in ops:
        if op.type == "invoke" or op.process == "nemesis":
            continue
        c = out.get(op.f)
        if c is None:
            c = out[op.f] = {"ok": 0, "fail": 0, "info": 0}
        c[op.type] += 1
    return out


def _windows(done: list[tuple[float, bool]], end_of_history: float) -> list[dict[str, Any]]:
    done.sort(key=lambda x: x[0])
    windows: list[dict[str, Any]] = []
    start: float | None = None
    for t, ok in done:
        if ok:
            if start is not None:
                windows.append({"start": start, "end": t, "duration_s": t - start})
                start = None
        elif start is None:
            start = t
    if start is not None:
        windows.append(
            {"start": start, "end": None, "duration_s": end_of_history - start, "open": True}
        )
    return windows


def availability(ops: Sequence[Op], *, fs: Sequence[str] = DEFAULT_FS) -> dict[str, Any]:
    """Counts per ``f``, and per ``f`` in ``fs`` the unavailability windows.

    A window is a maximal interval from a ``fail``/``info`` completion to the
    next ``ok`` completion; one still open at the end of the history runs to
    the last op's time and is marked ``open``. Informational: always valid.
    """
    wanted = set(fs)
    done: dict[str, list[tuple[float, bool]]] = {f: [] for f in fs}
    end = 0.0
    for op in ops:
        if op.time > end:
            end = op.time
        if op.f in wanted and op.type != "invoke" and op.process != "nemesis":
            done[op.f].append((op.time, op.type == "ok"))
    windows = {f: _windows(done[f], end) for f in fs}
    longest = {f: max(w, key=lambda x: x["duration_s"]) if w else None for f, w in windows.items()}
    return {"valid": True, "counts": counts(ops), "windows": windows, "longest": longest}
