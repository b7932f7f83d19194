"""Every fault proves it bit: an ``ok`` observation that its effect was seen.

The nemesis records, for each fault it injects (actions such as switchover
and failover included), an observation op::

    {"process": "observer", "type": "ok" | "fail", "f": "fault-effect",
     "value": {"fault": <index of the fault's nemesis op>, "target": "<target>",
               "evidence": "<text>"}, "node": "<target>", "index": ..., "time": ...}

``ok``: the effect was seen; ``fail``: someone looked and did not see it (the
evidence says what was seen). A fault that "passed" without biting proves
nothing, so a fault with no ``ok`` observation makes the verdict "unknown" —
never a pass, never a fail (nothing wrong was shown about the cluster).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from harness.checkers.compose import UNKNOWN
from harness.checkers.faults import faults as find_faults
from harness.history import OBSERVER, Op

FAULT_EFFECT: Final = "fault-effect"


def observations(ops: Sequence[Op], f: str = FAULT_EFFECT) -> list[Op]:
    """The observer's ``ok``/``fail`` ops of kind ``f``."""
    return [op for op in ops if op.process == OBSERVER and op.f == f and op.type in ("ok", "fail")]


def fault_effect(ops: Sequence[Op], *, f: str = FAULT_EFFECT) -> dict[str, Any]:
    """Per fault: the observations that reference it; unknown unless each has an ``ok`` one."""
    by_fault: dict[int, list[Op]] = {}
    stray: list[int] = []
    found = find_faults(ops)
    indices = {x.index for x in found}
    for op in observations(ops, f):
        ref = op.value.get("fault") if isinstance(op.value, dict) else None
        if type(ref) is int and ref in indices:
            by_fault.setdefault(ref, []).append(op)
        else:
            stray.append(op.index)
    rows: list[dict[str, Any]] = []
    reasons: list[str] = []
    for fault in found:
        seen = by_fault.get(fault.index, [])
        ok = [op for op in seen if op.type == "ok"]
        failed = [op for op in seen if op.type == "fail"]
        row: dict[str, Any] = {"fault": fault.index, "f": fault.f, "target": fault.target,
                               "observed": bool(ok)}
        if ok:
            row.update(time=ok[0].time, after_s=ok[0].time - fault.time,
                       evidence=_evidence(ok[0]))
        else:
            name = f"fault #{fault.index} ({fault.f} on {fault.target or '?'})"
            if failed:
                row["evidence"] = _evidence(failed[-1])
                reasons.append(f"{name}: no observation that it took effect; "
                               f"looked and saw: {row['evidence']}")
            else:
                reasons.append(f"{name}: no observation that it took effect")
        rows.append(row)
    result: dict[str, Any] = {
        "valid": UNKNOWN if reasons else True,
        "faults": rows,
        "observed": sum(r["observed"] for r in rows),
        "unobserved": len(rows) - sum(r["observed"] for r in rows),
        "reasons": reasons,
        "reason": "; ".join(reasons),
    }
    if stray:
        result["stray"] = stray[:20]
        result["stray_note"] = (f"{len(stray)} observation(s) reference no fault of this history "
                                "(a merge that did not renumber their 'fault'?)")
    return result


def _evidence(op: Op) -> str:
    value = op.value if isinstance(op.value, dict) else {}
    text = value.get("evidence")
    return str(text) if text is not None else ""
