"""After recovery: nothing of the load may fail once every fault was healed and had recovered.

The RTO stretch only has to hold until a fault's heal, so a router that keeps
sending writes to the wrong node after the heal would otherwise go unjudged.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Final

from harness.history import Op, pair_invocations

FINAL_READER: Final = 0  # the process of the final read-all (scenario.FINAL_READER)


def after_recovery(
    ops: Sequence[Op],
    *,
    rto_result: dict[str, Any] | None = None,
    fs: Collection[str] = ("write", "read"),
    exclude_processes: Collection[int | str] = (FINAL_READER,),
    skip_windows: Sequence[tuple[float, float]] = (),
) -> dict[str, Any]:
    """Writes or reads requested after the last heal and the last recovery that failed.

    Ops invoked within ``skip_windows`` (runbook steps: :mod:`harness.checkers.runbook_steps`
    attributes their failures to the step) are not counted here.

    The mark is the latest of every fault's heal (or its time when never
    healed) and its recovery (fault time + RTO, per kind). An op counts when
    it was invoked after the mark: ones in flight across it belong to the
    outage, as in the RTO checker. ``rto_result`` is the :func:`rto` result
    (computed here when not given).
    """
    if rto_result is None:
        from harness.checkers.rto import rto

        rto_result = rto(ops)
    faults = rto_result.get("faults") or []
    if not faults:
        return {"valid": True, "failures": 0, "since_s": None, "reason": ""}
    marks = [f["healed_at"] or f["time"] for f in faults]
    for f in faults:
        marks += [f["time"] + v for v in (f.get("rto_s") or {}).values() if v is not None]
    since = max(marks)
    ops = list(ops)
    invoked = pair_invocations(ops)
    def started(i: int) -> float:
        at = invoked[i]
        return ops[at].time if at is not None else ops[i].time

    bad = [op for i, op in enumerate(ops)
           if op.f in fs and op.type in ("fail", "info") and op.process not in exclude_processes
           and started(i) > since and not any(a <= started(i) <= b for a, b in skip_windows)]
    reason = (f"{len(bad)} writes/reads failed after every fault was healed and had recovered "
              f"(from {since:.1f} s; first: {bad[0].error})") if bad else ""
    return {"valid": not bad, "since_s": round(since, 3), "failures": len(bad), "reason": reason}
