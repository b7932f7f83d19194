"""RTO: per fault, time until an op kind succeeds again and stays successful."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any, Final

from harness.checkers.compose import UNKNOWN
from harness.checkers.faults import faults as find_faults
from harness.checkers.unavailability import Outcomes, outcomes
from harness.history import Op, pair_invocations

DEFAULT_STABLE_S: Final = 1.0
DEFAULT_FS: Final = ("write", "read")
DEFAULT_STALL_S: Final = None  # the old 2 s stall rule is subsumed by silent gaps; opt in with stall_s


class _Recovery:
    """Ok completions and bad intervals of one ``f``, indexed for recovery queries."""

    __slots__ = ("oks", "stable_from", "starts", "max_end", "last_done", "last_ok_is_last",
                 "last_bad_end", "seen")

    def __init__(self, o: Outcomes, stable_s: float) -> None:
        oks = self.oks = o.ok_times
        n = len(oks)
        gap = o.gap_s
        bad = o.bad_intervals()
        # by start, with the running max of ends: "did any bad before the heal outlast the fault?"
        self.starts = [a for a, _ in bad]
        max_end, m = [], float("-inf")
        for _, b in bad:
            m = b if b > m else m
            max_end.append(m)
        self.max_end = max_end
        self.last_bad_end = m
        # by end, with the suffix min of starts: "the first bad still going after t"
        by_end = sorted(bad, key=lambda x: x[1])
        ends = [b for _, b in by_end]
        min_start = [float("inf")] * (len(by_end) + 1)
        for i in range(len(by_end) - 1, -1, -1):
            a = by_end[i][0]
            min_start[i] = a if a < min_start[i + 1] else min_start[i + 1]
        # run_end[i]: last ok reached from ok i through ok completions spaced <= gap
        run_end = [n - 1] * n
        for i in range(n - 2, -1, -1):
            run_end[i] = run_end[i + 1] if oks[i + 1] - oks[i] <= gap else i
        stable_from = [n] * (n + 1)
        for i in range(n - 1, -1, -1):
            t = oks[i]
            next_bad = min_start[bisect_right(ends, t)]
            r = run_end[i]
            held = oks[r] >= t + stable_s or (
                r == n - 1 and r > i and o.last_ok_is_last)  # the history of f ends in oks
            stable_from[i] = i if held and next_bad > t + stable_s else stable_from[i + 1]
        self.stable_from = stable_from
        self.last_done = o.last_done
        self.last_ok_is_last = o.last_ok_is_last
        self.seen = o.seen

    def rto(self, fault_time: float, hold_until: float | None = None) -> tuple[float | None, str]:
        """(RTO, status): status is recovered, unobserved (f is absent from the
        history: no client ever invoked it), unrecovered (no ok of f after the
        fault starts a stable stretch: among others, nothing of f completed after
        it, or an op of f was still open at the end), or unconfirmed (the last
        word after the fault is an ok, but no stable stretch of oks follows it).

        With ``hold_until`` (the fault's heal), the stretch must also hold until
        then: the recovering ok comes after the last bad that began before the heal.
        """
        if self.seen == 0:
            return None, "unobserved"
        oks = self.oks
        j = bisect_right(oks, fault_time)
        if hold_until is not None:
            last = bisect_right(self.starts, hold_until) - 1
            if last >= 0 and self.max_end[last] > fault_time:
                j = max(j, bisect_left(oks, self.max_end[last]))
        k = self.stable_from[j] if j < len(oks) else len(oks)
        if k < len(oks):
            return oks[k] - fault_time, "recovered"
        if (self.last_ok_is_last and oks and oks[-1] > fault_time
                and oks[-1] >= self.last_bad_end):
            return None, "unconfirmed"
        return None, "unrecovered"


def _worst(values: list[float | None]) -> float | None:
    return None if not values or None in values else max(values)  # type: ignore[type-var]


def _with_stalls(ops: Sequence[Op], o: dict[str, Outcomes], stall_s: float) -> None:
    """The old rule, on request: an ok slower than ``stall_s`` is bad from ``stall_s`` after its invocation."""
    invoked_at = pair_invocations(list(ops))
    for i, op in enumerate(ops):
        got = o.get(op.f)
        inv = invoked_at[i]
        if got is None or op.type != "ok" or inv is None or op.process in ("nemesis", "observer"):
            continue
        if op.time - ops[inv].time > stall_s:
            got.bad_started.append(ops[inv].time + stall_s)
    for got in o.values():
        got.bad_started.sort()


def rto(
    ops: Sequence[Op],
    *,
    stable_s: float = DEFAULT_STABLE_S,
    gap_s: float | None = None,
    probe_period_s: float | None = None,
    stall_s: float | None = DEFAULT_STALL_S,
    fs: Sequence[str] = DEFAULT_FS,
) -> dict[str, Any]:
    """RTO per fault and per ``f`` in ``fs``.

    Unavailability of ``f`` (see :mod:`harness.checkers.unavailability`): a
    ``fail``/``info`` completion, the invocation of an op that ended so, and
    every **silent gap** — ops of ``f`` in flight and no ``ok`` of ``f``
    completing for longer than ``gap_s`` (default max(0.25 s, 5 × the probe
    period derived from the history; ``probe_period_s`` sets the period
    instead), whether or not an error was raised.

    A fault's RTO for ``f`` runs from the fault op's time to the completion of
    the first ``ok`` of ``f`` after it that starts a **stable stretch**:

    - no bad point and no silent gap within ``stable_s`` after it (an op that
      hangs past the window and then fails still breaks the stretch: its
      invocation is a bad point — the in-flight-failure rule);
    - ``ok`` completions of ``f`` actually come through the stretch, spaced no
      more than ``gap_s`` until ``stable_s`` after it — or, at the very end of
      ``f``'s history, at least one more ok follows and nothing but oks
      complete after it. An ok followed by silence (traffic paused at the
      fault) or by nothing at all is not stable;
    - when the fault has a heal, the stretch must also last until the heal
      began (hold-until-heal; the heal op's ``began``, else its time): a fault
      whose effect starts late (a graceful stop takes seconds to bite) is not
      "recovered" by the ok that preceded its outage. What the repair itself
      disturbs (starting a killed member) is not charged to the fault's RTO.

    Per fault and ``f``: the RTO, or None with ``f`` listed in ``unobserved``
    (no client invoked ``f`` anywhere in the history; not judged), or
    ``unrecovered`` when nothing of ``f`` completes after the fault or an op of
    ``f`` is still open at the end (no pass without evidence of recovery),
    ``unconfirmed`` (the last completion after the fault is an ok but no
    stable stretch follows: validity "unknown") or ``unrecovered`` (invalid).
    ``stall_s`` (off by default) adds the old rule: an ok slower than
    ``stall_s`` is bad from ``stall_s`` after its invocation.
    """
    o = outcomes(ops, fs, gap_s=gap_s, probe_period_s=probe_period_s)
    if stall_s is not None:
        _with_stalls(ops, o, stall_s)
    recovery = {f: _Recovery(o[f], stable_s) for f in fs}

    results: list[dict[str, Any]] = []
    worst: dict[str, list[float | None]] = {f: [] for f in fs}
    unrecovered: list[dict[str, Any]] = []
    unconfirmed: list[dict[str, Any]] = []
    for fault in find_faults(ops):
        row = fault.to_dict()
        row["rto_s"] = {}
        row["unobserved"] = []
        row["unconfirmed"] = []
        for f in fs:
            value, status = recovery[f].rto(fault.time, fault.heal_began)
            row["rto_s"][f] = value
            if status == "unobserved":
                row["unobserved"].append(f)
                continue
            worst[f].append(value)
            if status == "unrecovered":
                unrecovered.append({"fault": fault.index, "f": f})
            elif status == "unconfirmed":
                row["unconfirmed"].append(f)
                unconfirmed.append({"fault": fault.index, "f": f})
        results.append(row)
    return {
        "valid": False if unrecovered else (UNKNOWN if unconfirmed else True),
        "stable_s": stable_s,
        "stall_s": stall_s,
        "gap_s": {f: o[f].gap_s for f in fs},
        "probe_period_s": {f: o[f].period_s for f in fs},
        "rto_s": {f: _worst(worst[f]) for f in fs},
        "faults": results,
        "unrecovered": unrecovered,
        "unconfirmed": unconfirmed,
    }
