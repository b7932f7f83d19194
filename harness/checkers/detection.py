"""Was the fault noticed? Time-to-detect and time-to-resolve of expected alerts.

Reads the ``monitor`` ops (see harness.alerts.watcher): ``expect-alerts``
declares, for one fault, the alerts that must fire::

    {"process": "monitor", "type": "info", "f": "expect-alerts",
     "value": {"alerts": ["PatroniMemberDown"], "detect_s": 60, "resolve_s": 120,
               "fault": <index of the fault's nemesis op> (optional)}}

Without ``fault`` it applies to the first fault injected after it. Then:

- each expected alert must fire (a ``firing`` notification) within
  ``detect_s`` of the fault; time-to-detect = that arrival − the fault;
- each must resolve within ``resolve_s`` of the fault's heal (of the fault
  itself when it has no heal); time-to-resolve = resolution − heal, 0 when it
  resolved before the heal (the cluster recovered by itself);
- no alert that fired during the watch may still be firing at its end;
- critical alerts that fired and no expectation names are listed
  (``unexpected``), not failed: a fault may page more than it must.

Without a ``watch`` start op nothing was watched: "unknown".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from harness.checkers.compose import UNKNOWN
from harness.checkers.faults import Fault
from harness.checkers.faults import faults as find_faults
from harness.history import MONITOR, Op

EXPECT: Final = "expect-alerts"
DEFAULT_DETECT_S: Final = 60.0  # well inside the guide's 5-minute acknowledgement
DEFAULT_RESOLVE_S: Final = 120.0


def has_expectations(ops: Sequence[Op]) -> bool:
    return any(op.process == MONITOR and op.f == EXPECT for op in ops)


def _transitions(ops: Sequence[Op]) -> list[Op]:
    return [op for op in ops if op.process == MONITOR and op.f == "alert" and isinstance(op.value, dict)]


def _fault_for(expect: Op, found: list[Fault]) -> Fault | None:
    ref = expect.value.get("fault")
    if type(ref) is int:
        return next((x for x in found if x.index == ref), None)
    return next((x for x in found if x.time >= expect.time), None)


def _key(op: Op) -> str:
    return str(op.value.get("fingerprint") or op.value.get("alert"))


def detection(ops: Sequence[Op]) -> dict[str, Any]:
    """Expected alerts fired in time and resolved in time; nothing left firing."""
    watches = [op for op in ops if op.process == MONITOR and op.f == "watch" and isinstance(op.value, dict)]
    start = next((op for op in watches if op.value.get("state") == "start"), None)
    end = next((op for op in reversed(watches) if op.value.get("state") == "end"), None)
    if start is None:
        return {"valid": UNKNOWN, "error": "alerts were not watched (no monitor watch op)"}
    end_t = end.time if end is not None else max((op.time for op in ops), default=start.time)
    found = find_faults(ops)
    moves = _transitions(ops)
    failures: list[str] = []
    expectations: list[dict[str, Any]] = []
    expected_names: set[str] = set()

    for exp in (op for op in ops if op.process == MONITOR and op.f == EXPECT and isinstance(op.value, dict)):
        names = [str(n) for n in exp.value.get("alerts", [])]
        expected_names.update(names)
        detect_s = float(exp.value.get("detect_s", DEFAULT_DETECT_S))
        resolve_s = float(exp.value.get("resolve_s", DEFAULT_RESOLVE_S))
        fault = _fault_for(exp, found)
        if fault is None:
            failures.append(f"alerts {', '.join(names)} expected, but no fault followed the expectation")
            continue
        what = f"{fault.f} {fault.target}"
        healed = fault.healed_at if fault.healed_at is not None else fault.time
        per: dict[str, Any] = {}
        for name in names:
            fired = [op for op in moves if op.value.get("alert") == name and op.value.get("status") == "firing"
                     and op.time >= fault.time]
            if not fired:
                failures.append(f"fault not detected: {name} did not fire within {end_t - fault.time:.0f} s "
                                f"of {what} (target {detect_s:.0f} s)")
                per[name] = {"fired": False, "detect_s": None, "resolve_s": None}
                continue
            first = fired[0]
            detect = first.time - fault.time
            if detect > detect_s:
                failures.append(f"{name} fired {detect:.1f} s after {what}: over the {detect_s:.0f} s "
                                "time-to-detect target")
            resolved = next((op for op in moves if op.value.get("status") == "resolved"
                             and _key(op) == _key(first) and op.time > first.time), None)
            resolve = None
            if resolved is None:
                failures.append(f"{name} still firing at the end (fired {detect:.1f} s after {what})")
            else:
                resolve = max(0.0, resolved.time - healed)
                if resolve > resolve_s:
                    failures.append(f"{name} resolved {resolve:.1f} s after {what} was healed: over the "
                                    f"{resolve_s:.0f} s time-to-resolve target")
            per[name] = {"fired": True, "detect_s": round(detect, 3),
                         "resolve_s": None if resolve is None else round(resolve, 3),
                         "firing_s": None if resolved is None else round(resolved.time - first.time, 3),
                         "fired_at": first.time, "resolved_at": resolved.time if resolved else None}
        detected = [v["detect_s"] for v in per.values() if v["detect_s"] is not None]
        expectations.append({"fault": fault.index, "f": fault.f, "target": fault.target,
                             "detect_target_s": detect_s, "resolve_target_s": resolve_s,
                             "detect_s": min(detected) if detected else None, "alerts": per})

    # what the watch saw: alerts left firing, and pages nobody declared
    already = {str(a.get("fingerprint") or a.get("alert")) for a in start.value.get("firing", [])}
    firing: dict[str, Op] = {}
    unexpected: dict[str, dict[str, Any]] = {}
    for op in moves:
        if op.value.get("status") == "firing":
            firing[_key(op)] = op
            name = str(op.value.get("alert"))
            if name not in expected_names and op.value.get("severity") == "critical":
                unexpected.setdefault(name, {"first_at": op.time, "count": 0})["count"] += 1
        else:
            firing.pop(_key(op), None)
    left = sorted({str(op.value.get("alert")) for k, op in firing.items() if k not in already})
    named = {n for e in expectations for n, v in e["alerts"].items() if v["fired"] and v["resolve_s"] is None}
    failures += [f"alert {n} still firing at the end" for n in left if n not in named]
    return {
        "valid": not failures,
        "reason": "; ".join(failures) if failures else None,
        "failures": failures,
        "expectations": expectations,
        "detect_s": min((e["detect_s"] for e in expectations if e["detect_s"] is not None), default=None),
        "unexpected_critical": unexpected,
        "firing_at_start": sorted({str(a.get("alert")) for a in start.value.get("firing", [])}),
        "firing_at_end": left,
        "feed": start.value.get("source"),
        "window_s": round(end_t - start.time, 3),
    }
