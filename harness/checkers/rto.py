"""RTO: per fault, time until an op kind succeeds again and stays successful."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Any, Final

from harness.checkers.faults import faults as find_faults
from harness.history import Op, pair_invocations

DEFAULT_STABLE_S: Final = 1.0
DEFAULT_FS: Final = ("write", "read")


class _Recovery:
    """Completions of one ``f`` in time order, indexed for recovery queries."""

    __slots__ = ("times", "stable_from")

    def __init__(self, done: list[tuple[float, bool]], stable_s: float) -> None:
        done.sort(key=lambda x: x[0])
        n = len(done)
        self.times = [t for t, _ in done]
        # stable_from[i]: first position >= i holding an ok with no fail/info
        # completing within stable_s after it; n when there is none.
        stable_from = [n] * (n + 1)
        next_bad = float("inf")
        for i in range(n - 1, -1, -1):
            t, ok = done[i]
            if ok and next_bad > t + stable_s:
                stable_from[i] = i
            else:
                stable_from[i] = stable_from[i + 1]
            if not ok:
                next_bad = t
        self.stable_from = stable_from

    def rto(self, fault_time: float) -> tuple[float | None, bool]:
        """(RTO, observed): observed is False when no op completed after the fault."""
        j = bisect_right(self.times, fault_time)
        if j == len(self.times):
            return None, False
        k = self.stable_from[j]
        if k == len(self.times):
            return None, True
        return self.times[k] - fault_time, True


def _worst(values: list[float | None]) -> float | None:
    return None if not values or None in values else max(values)  # type: ignore[type-var]


def rto(
    ops: Sequence[Op],
    *,
    stable_s: float = DEFAULT_STABLE_S,
    fs: Sequence[str] = DEFAULT_FS,
) -> dict[str, Any]:
    """RTO per fault and per ``f`` in ``fs``.

    A fault's RTO for ``f`` runs from the fault op's time to the completion of
    the first ``ok`` of ``f`` after it that starts a stable stretch: no
    ``fail``/``info`` of ``f`` completes within ``stable_s`` after it (or the
    history ends), and none that completes later was invoked within it (an
    op that hangs past the window and then fails still breaks the stretch).
    None when nothing recovered; an ``f`` with no completions after the fault
    is reported as ``unobserved`` and does not count as unrecovered. Invalid
    when any observed fault never recovered.
    """
    wanted = set(fs)
    done: dict[str, list[tuple[float, bool]]] = {f: [] for f in fs}
    invoked_at = pair_invocations(list(ops))
    for i, op in enumerate(ops):
        if op.f in wanted and op.type != "invoke" and op.process != "nemesis":
            ok = op.type == "ok"
            done[op.f].append((op.time, ok))
            inv = invoked_at[i]
            if not ok and inv is not None and ops[inv].time < op.time:
                done[op.f].append((ops[inv].time, False))  # the failing op was under way from here
    recovery = {f: _Recovery(done[f], stable_s) for f in fs}

    results: list[dict[str, Any]] = []
    worst: dict[str, list[float | None]] = {f: [] for f in fs}
    unrecovered: list[dict[str, Any]] = []
    for fault in find_faults(ops):
        row = fault.to_dict()
        row["rto_s"] = {}
        row["unobserved"] = []
        for f in fs:
            value, observed = recovery[f].rto(fault.time)
            row["rto_s"][f] = value
            if not observed:
                row["unobserved"].append(f)
                continue
            worst[f].append(value)
            if value is None:
                unrecovered.append({"fault": fault.index, "f": f})
        results.append(row)
    return {
        "valid": not unrecovered,
        "stable_s": stable_s,
        "rto_s": {f: _worst(worst[f]) for f in fs},
        "faults": results,
        "unrecovered": unrecovered,
    }
