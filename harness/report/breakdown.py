"""Where a scenario's wall time went, from the phases its run recorded.

Segments, each a sum of intervals that do not overlap:

- ``in fault``: from each fault's injection to its heal (the run's own waits
  for a new leader, for recovery and for the page happen inside);
- ``after heal``: from the last heal to the load's stop (recovery watched
  after the heal);
- ``procedure``: the rest of the scenario's own body, from its first step after
  the load's start and baseline to the load's stop (runbook steps, backups,
  restores, a redeploy, holds of a fault the nemesis did not inject);
- ``settling``: heal-all, then the steady state's return;
- ``resolving alerts``: waiting for the alerts the run raised to resolve;
- ``overhead``: everything else (the steady state before, the load's start
  and baseline, the final read, the verdict, logs).

``detecting`` (time held for an expected page) is reported beside them; it
lies inside ``in fault``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

SEGMENTS: Final = ("in fault", "after heal", "procedure", "settling", "resolving alerts", "overhead")


def _first(phases: Sequence[dict[str, Any]], *names: str) -> float | None:
    return next((float(p["time"]) for p in phases if p.get("phase") in names), None)


def breakdown(phases: Sequence[dict[str, Any]], wall_s: float | None) -> dict[str, float] | None:
    """Seconds per segment (see the module doc); None without phases or a wall time."""
    if not phases or wall_s is None:
        return None
    open_: dict[Any, float] = {}
    windows: list[tuple[float, float]] = []
    for p in phases:
        name, t = str(p.get("phase", "")), float(p.get("time", 0.0))
        if name.startswith("inject "):
            open_[p.get("fault", name)] = t
        elif name.startswith("heal ") and p.get("fault") in open_:
            windows.append((open_.pop(p.get("fault")), t))
    load_stop = _first(phases, "load-stop", "interrupted")
    end_of_fault = load_stop if load_stop is not None else float(wall_s)
    windows += [(t, end_of_fault) for t in open_.values()]
    in_fault = 0.0
    last_end = None
    for a, b in sorted(windows):
        if last_end is not None and a < last_end:
            a = last_end
        if b > a:
            in_fault += b - a
            last_end = b if last_end is None else max(last_end, b)
    heals = [b for _, b in windows]
    after_heal = max(0.0, load_stop - max(heals)) if heals and load_stop is not None else 0.0
    started = next((i for i, p in enumerate(phases) if p.get("phase") == "load-start"), None)
    body_start = (float(phases[started + 1].get("time", 0.0))
                  if started is not None and started + 1 < len(phases) else None)
    procedure = (max(0.0, load_stop - body_start - in_fault - after_heal)
                 if body_start is not None and load_stop is not None and load_stop > body_start else 0.0)
    heal_all = _first(phases, "heal-all")
    alerts = _first(phases, "alerts-resolve")
    alerts_done = _first(phases, "alerts-resolved", "alerts-still-firing")
    final = _first(phases, "final-read")
    settle_end = alerts if alerts is not None else final
    settling = max(0.0, settle_end - heal_all) if heal_all is not None and settle_end is not None else 0.0
    resolving = max(0.0, alerts_done - alerts) if alerts is not None and alerts_done is not None else 0.0
    detecting = sum(float(p.get("after_s") or p.get("waited_s") or 0.0) for p in phases
                    if p.get("phase") in ("alert-fired", "alert-not-fired"))
    counted = in_fault + after_heal + procedure + settling + resolving
    out = {"in fault": in_fault, "after heal": after_heal, "procedure": procedure, "settling": settling,
           "resolving alerts": resolving, "overhead": max(0.0, float(wall_s) - counted),
           "detecting": detecting, "wall": float(wall_s)}
    return {k: round(v, 1) for k, v in out.items()}


def overhead_share(b: dict[str, float] | None) -> float | None:
    """Overhead over the wall time (the goal: at most 25 %)."""
    if not b or not b.get("wall"):
        return None
    return b["overhead"] / b["wall"]
