"""Each fault of the catalogue that no scenario exercises on its own, live:
inject, observe its effect, heal, and the steady state returns with nothing
lost. (kill, stop, pg-kill, partition, disk-full, etcd-outage, latency,
bandwidth, switchover and failover are exercised by scenarios/.)"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from harness.scenario import ScenarioRun

pytestmark = pytest.mark.docker


def started_at(run: ScenarioRun, service: str) -> str:
    container = run.stack.container(service)
    container.reload()
    return container.attrs["State"]["StartedAt"]


def no_ok_writes_for(run: ScenarioRun, seconds: float) -> bool:
    return time.monotonic() - run.probe.last_ok["write"] >= seconds


def probe_failed_since(run: ScenarioRun, since: float) -> bool:
    return run.probe.last_failure["write"] > since


CASES: dict[str, tuple[str, str, dict[str, Any], Callable[[ScenarioRun, dict[str, Any]], bool]]] = {
    "restart-primary": ("restart", "primary", {},
                        lambda run, ctx: started_at(run, ctx["target"]) != ctx["started"]),
    "pause-replica": ("pause", "replica", {},
                      lambda run, ctx: run.stack.container(ctx["target"]).status == "paused"),
    "timeout-client": ("timeout", "client", {}, lambda run, ctx: no_ok_writes_for(run, 1.5)),
    "link-down-client": ("link-down", "client", {}, lambda run, ctx: probe_failed_since(run, ctx["t0"])),
    "reset-peer-client": ("reset-peer", "client", {}, lambda run, ctx: probe_failed_since(run, ctx["t0"])),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fault_has_its_effect_and_heals(scenario_run, case):
    fault, role, params, effect = CASES[case]
    with scenario_run(name=f"fault-{case}", target=None, load=False) as run:
        ctx: dict[str, Any] = {"t0": time.monotonic()}
        if fault == "restart":
            ctx["target"] = run.nemesis.resolve_node(role)
            ctx["started"] = started_at(run, ctx["target"])
        active = run.nemesis.inject(fault, role, **params)
        ctx.setdefault("target", active.target)
        run.wait_until(f"{fault} on {active.target} has its effect", lambda: effect(run, ctx), timeout_s=30)
        run.nemesis.heal(active)
        run.wait_for_recovery()
    verdict = run.verdict
    assert verdict["steady_state"]["after"], verdict["reasons"]
    assert verdict["rpo"]["lost"] == 0, verdict["reasons"]
    assert verdict["verdict"] == "pass", verdict["reasons"]
