"""Availability: outcome counts per ``f`` and the windows when an ``f`` was unavailable."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any, Final

from harness.checkers.unavailability import NON_CLIENT, Outcomes, outcomes
from harness.history import Op

DEFAULT_FS: Final = ("write", "read")


def counts(ops: Sequence[Op]) -> dict[str, dict[str, int]]:
    """``{f: {"ok": n, "fail": n, "info": n}}`` over client completions (faults and observations excluded)."""
    out: dict[str, dict[str, int]] = {}
    for op in ops:
        if op.type == "invoke" or op.process in NON_CLIENT:
            continue
        c = out.get(op.f)
        if c is None:
            c = out[op.f] = {"ok": 0, "fail": 0, "info": 0}
        c[op.type] += 1
    return out


def _windows(o: Outcomes, end_of_history: float) -> list[dict[str, Any]]:
    bad = sorted([(t, t) for t in o.bad_done] + o.gaps)
    oks = o.ok_times
    windows: list[dict[str, Any]] = []
    i, n = 0, len(bad)
    while i < n:
        start, end = bad[i]
        k = bisect_left(oks, end)
        while True:  # absorb every bad that begins before the ok that would close the window
            i += 1
            if i < n and (k == len(oks) or bad[i][0] < oks[k]):
                if bad[i][1] > end:
                    end = bad[i][1]
                    k = bisect_left(oks, end)
                continue
            break
        if k == len(oks):
            windows.append({"start": start, "end": None, "duration_s": end_of_history - start,
                            "open": True})
            break
        windows.append({"start": start, "end": oks[k], "duration_s": oks[k] - start})
    return windows


def availability(
    ops: Sequence[Op],
    *,
    fs: Sequence[str] = DEFAULT_FS,
    gap_s: float | None = None,
    probe_period_s: float | None = None,
) -> dict[str, Any]:
    """Counts per ``f``, and per ``f`` in ``fs`` the unavailability windows.

    A window starts at a ``fail``/``info`` completion or at the start of a
    silent gap (ops of ``f`` in flight, no ``ok`` completing for longer than
    ``gap_s``; see :mod:`harness.checkers.unavailability`) and ends at the next
    ``ok`` completion; one still open at the end of the history runs to the
    last op's time and is marked ``open``. Informational: always valid.
    """
    o = outcomes(ops, fs, gap_s=gap_s, probe_period_s=probe_period_s)
    end = max((op.time for op in ops), default=0.0)
    windows = {f: _windows(o[f], end) for f in fs}
    longest = {f: max(w, key=lambda x: x["duration_s"]) if w else None for f, w in windows.items()}
    return {"valid": True, "counts": counts(ops), "windows": windows, "longest": longest,
            "gap_s": {f: o[f].gap_s for f in fs}}
