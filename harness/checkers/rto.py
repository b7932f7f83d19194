"""RTO: per fault, time until an op kind succeeds again and stays successful."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Any, Final

from harness.checkers.faults import faults as find_faults
from harness.history import Op, pair_invocations

DEFAULT_STABLE_S: Final = 1.0
DEFAULT_FS: Final = ("write", "read")
DEFAULT_STALL_S: Final = 2.0


class _Recovery:
    """Completions of one ``f`` in time order, indexed for recovery queries."""

    __slots__ = ("times", "stable_from", "bad_times")

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
        self.bad_times = [t for t, ok in done if not ok]

    def rto(self, fault_time: float, hold_until: float | None = None) -> tuple[float | None, bool]:
        """(RTO, observed): observed is False when no op completed after the fault.

        With `hold_until` (the fault's heal), the stretch must also hold until
        then: the recovering ok comes after the last failure before the heal.
        """
        j = bisect_right(self.times, fault_time)
        if j == len(self.times):
            return None, False
        if hold_until is not None:
            last = bisect_right(self.bad_times, hold_until) - 1
            if last >= 0 and self.bad_times[last] > fault_time:
                j = max(j, bisect_right(self.times, self.bad_times[last]))
        k = self.stable_from[j] if j < len(self.times) else len(self.times)
        if k == len(self.times):
            return None, True
        return self.times[k] - fault_time, True


def _worst(values: list[float | None]) -> float | None:
    return None if not values or None in values else max(values)  # type: ignore[type-var]


def rto(
    ops: Sequence[Op],
    *,
    stable_s: float = DEFAULT_STABLE_S,
    stall_s: float = DEFAULT_STALL_S,
    fs: Sequence[str] = DEFAULT_FS,
) -> dict[str, Any]:
    """RTO per fault and per ``f`` in ``fs``.

    A fault's RTO for ``f`` runs from the fault op's time to the completion of
    the first ``ok`` of ``f`` after it that starts a stable stretch: no
    ``fail``/``info`` of ``f`` completes within ``stable_s`` after it (or the
    history ends), and none that completes later was invoked within it (an
    op that hangs past the window and then fails still breaks the stretch).
    When the fault has a heal, the stretch must also last until the heal: a
    fault whose effect starts late (a graceful stop takes seconds to bite)
    is not "recovered" by the ok that preceded its outage. An op that
    succeeds but takes longer than ``stall_s`` (queued in the pooler while no
    leader exists) counts as unavailable from ``stall_s`` after its
    invocation until it completes: a stall is an outage that did not error.
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
            if inv is None or ops[inv].time >= op.time:
                continue
            if not ok:
                done[op.f].append((ops[inv].time, False))  # the failing op was under way from here
            elif op.time - ops[inv].time > stall_s:
                done[op.f].append((ops[inv].time + stall_s, False))  # stalled: unavailable from here
    recovery = {f: _Recovery(done[f], stable_s) for f in fs}

    results: list[dict[str, Any]] = []
    worst: dict[str, list[float | None]] = {f: [] for f in fs}
    unrecovered: list[dict[str, Any]] = []
    for fault in find_faults(ops):
        row = fault.to_dict()
        row["rto_s"] = {}
        row["unobserved"] = []
        for f in fs:
            value, observed = recovery[f].rto(fault.time, fault.healed_at)
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
        "stall_s": stall_s,
        "rto_s": {f: _worst(worst[f]) for f in fs},
        "faults": results,
        "unrecovered": unrecovered,
    }
