"""Steps shared by the Swarm scenarios (`--engine swarm`).

In the guide's stack the coordinators are one 3-replica service
(`postgres-mesh_coordinator`); here each Patroni member is its own service
(its data volume and name must stay with it). `update_one_at_a_time` emulates
what `docker service update` does to a 3-task service with the default update
config — parallelism 1, delay 0, order stop-first: one task at a time, in slot
order, blind to Patroni roles, the next task only once the replacement task
runs (with a healthcheck, "running" means healthy)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import requests

from harness.checkers.availability import availability
from harness.checkers.unavailability import NON_CLIENT
from harness.history import Op
from harness.scenario import ScenarioRun


def timeline_switches(run: ScenarioRun) -> int | None:
    """Patroni's timeline history length (one entry per promotion, a leader that
    takes its own key back included) from any member."""
    for member in run.stack.manifest.coordinator.members:
        with contextlib.suppress(Exception):
            return len(requests.get(f"{run.stack.patroni_url(member)}/history", timeout=3).json())
    return None


def update_one_at_a_time(run: ScenarioRun, fault: str, services: list[str]) -> list[dict[str, Any]]:
    """Each service in turn: inject `fault` (a swarm update), wait for its new task to
    run (the fault's heal), record leader and timing per step in run.figures["steps"]."""
    steps = run.figures.setdefault("steps", [])
    for service in services:
        leader_before = run.leader()
        t0 = time.monotonic()
        active = run.nemesis.inject(fault, service)
        run.nemesis.heal(active)  # waits (bounded) for the replacement task to run
        steps.append({"fault": active.id, "service": service, "was_leader": service == leader_before,
                      "leader_before": leader_before, "leader_after": run.leader(),
                      "replaced_after_s": round(time.monotonic() - t0, 1),
                      "effect": (active.effect or {}).get("evidence")})
    run.figures["leader_changes"] = sum(s["leader_before"] != s["leader_after"] for s in steps)
    return steps


def dropped(ops: list[Op], start: float, end: float) -> dict[str, int]:
    """Client ops (probe and locust) that completed fail/info between start and end: the
    clients dropped or refused while the fault was in force, per f."""
    out: dict[str, int] = {}
    for op in ops:
        if op.process in NON_CLIENT or op.type not in ("fail", "info") or not start <= op.time <= end:
            continue
        out[op.f] = out.get(op.f, 0) + 1
    return out


def fault_window(ops: list[Op]) -> tuple[float, float]:
    """From the first fault op to the last heal op (the merged history renumbers ops)."""
    t_in = [op.time for op in ops if op.process == "nemesis" and op.f != "heal"]
    t_out = [op.time for op in ops if op.process == "nemesis" and op.f == "heal"]
    return (min(t_in) if t_in else 0.0), (max(t_out) if t_out else float("inf"))


def record_dropped(run: ScenarioRun, name: str = "clients-dropped") -> None:
    """A check that puts the clients dropped during the faults into run.figures (always valid)."""

    def check(ops: list[Op]) -> dict[str, Any]:
        start, end = fault_window(ops)
        run.figures["clients_dropped"] = dropped(ops, start, end)
        run.figures["fault_window_s"] = round(end - start, 1) if end != float("inf") else None
        windows = availability(ops)["windows"]
        run.figures["unavailable_s"] = {  # summed unavailability windows from the first fault on
            f: round(sum(w["duration_s"] for w in ws if w["end"] >= start), 1) for f, ws in windows.items()}
        return {"valid": True, "reason": f"client ops failed during the faults: {run.figures['clients_dropped']}"}

    run.add_check(name, check)
