"""Every fault of the catalogue, live, in one run: inject, the nemesis's own look at the
fault's effect (process "observer", f "fault-effect") recorded as "ok" in the history
before the fault's heal, with evidence of what was seen; heal, and the steady state
returns with nothing lost. The faults no scenario exercises on its own (restart, pause,
timeout, link-down, reset-peer) are also seen from outside the nemesis: a new container
start, a paused container, the probe's writes stalled or failing."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from harness.history import read_history
from harness.scenario import ScenarioRun
from harness.stack.steady_state import wait_for_steady_state

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


def assert_observed(run: ScenarioRun, fault: str, target: str, nth: int | None = None) -> dict[str, Any]:
    """The fault's op, then an "ok" fault-effect observation naming it, before its heal
    (`nth`: the run's nth fault op, when the run injected several)."""
    ops = read_history(run.dir / "history-harness.jsonl")
    faults = [op for op in ops if op.process == "nemesis" and op.f not in ("heal", "heal-all")
              and op.type == "info" and isinstance(op.value, dict) and "target" in op.value]
    if nth is None:
        [fault_op] = [op for op in faults if op.f == fault]
    else:
        fault_op = faults[nth]
        assert fault_op.f == fault, (nth, fault_op.f, fault)
    looks = [op for op in ops if op.process == "observer" and op.f == "fault-effect"
             and op.value["fault"] == fault_op.index]
    assert [op.type for op in looks] == ["ok"], [op.value for op in looks]
    assert looks[0].value["target"] == looks[0].node == target == fault_op.value["target"]
    heal = [op for op in ops if op.f == "heal" and op.value.get("fault") == fault_op.index]
    assert heal and looks[0].index < heal[0].index, "the look is recorded before the heal"
    return looks[0].value


# The reference stack's Patroni: retry_timeout 5 s + loop_wait 2 s, and 2 s to spare. A DCS
# outage healed earlier races the leader's demotion (seen: demoted 1.9 s after the heal,
# counted as failures after recovery); held this long, the demotion falls inside the fault.
DCS_HOLD_S = 9.0

# case -> (fault, role, params, words the evidence must hold)
OBSERVED: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "kill-replica": ("kill", "replica", {}, "exited"),
    "stop-replica": ("stop", "replica", {"timeout": 5}, "exited"),
    "pg-kill-replica": ("pg-kill", "replica", {}, "postmaster pid"),
    "pg-kill-worker": ("pg-kill", "worker-1", {}, "gone with its container"),  # its postmaster is PID 1
    "partition-replica": ("partition", "replica", {}, "not attached to"),
    "disk-full-replica": ("disk-full", "replica", {}, "ENOSPC"),
    "etcd-outage": ("etcd-outage", "dcs", {}, "last reached the DCS"),
    "latency-client": ("latency", "client", {"latency": 100, "jitter": 10}, "latency downstream"),
    "bandwidth-replication": ("bandwidth", "replication", {"rate": 256, "stream": "downstream"},
                              "bandwidth downstream"),
    "switchover": ("switchover", "candidate", {}, "leader "),
    "failover": ("failover", "candidate", {}, "leader "),
}


def test_every_fault_effect_is_observed(scenario_run):
    """Every case of CASES and OBSERVED in one run, one after the other (each healed,
    recovered and back to the steady state before the next): the same checks per fault as
    runs of their own, without a run's fixed costs sixteen times over. A failure names its
    case. No target row: measured, nothing failed, and never called a pass."""
    seen: dict[str, tuple[str, str, str | None]] = {}  # case -> (fault, target, words)
    cases = {**{case: (fault, role, params, None) for case, (fault, role, params, _) in CASES.items()},
             **OBSERVED}
    with scenario_run(name="effect-every-fault", target=None, load=False) as run:
        for case, (fault, role, params, words) in cases.items():
            steady = wait_for_steady_state(run.stack, timeout=run.options.scaled(120))
            assert steady.healthy, f"{case}: no steady state before it: {steady.summary()}"
            ctx: dict[str, Any] = {"t0": time.monotonic()}
            if fault == "restart":
                ctx["target"] = run.nemesis.resolve_node(role)
                ctx["started"] = started_at(run, ctx["target"])
            if role == "candidate":
                role = run.nemesis.resolve_node("candidate")
            injected = time.monotonic()
            active = run.nemesis.inject(fault, role, **params)
            ctx.setdefault("target", active.target)
            if case in CASES:  # seen from outside the nemesis too
                run.wait_until(f"{case}: {fault} on {active.target} has its effect",
                               partial(CASES[case][3], run, ctx), timeout_s=30)
            effect = run.nemesis.observed(active)
            assert effect is not None and effect["seen"], (case, effect)
            if fault == "etcd-outage":  # a leader that demotes (retry_timeout) does so inside the fault,
                run.sleep(max(0.0, DCS_HOLD_S - (time.monotonic() - injected)))  # not just after its heal
            run.nemesis.heal(active)
            run.wait_for_recovery(timeout_s=120)
            seen[case] = (fault, active.target, words)
    for case, (fault, target, words) in seen.items():
        value = assert_observed(run, fault, target, nth=list(seen).index(case))
        assert words is None or words in value["evidence"], (case, value)
    assert len(seen) == len(cases), sorted(set(cases) - set(seen))
    verdict = run.verdict
    assert verdict["steady_state"]["after"], verdict["reasons"]
    assert verdict["rpo"]["lost"] == 0, verdict["reasons"]
    assert verdict["verdict"] == "unjudged", verdict["reasons"]
    assert {f["severity"] for f in verdict["findings"]} <= {"unjudged", "note"}, verdict["reasons"]
    # every phase names its fault as history.jsonl numbers it (the reasons' "fault #N")
    ops = {op.index: op for op in read_history(run.dir / "history.jsonl")}
    named = [p for p in verdict["phases"] if "fault" in p]
    assert len(named) >= 2 * len(cases), verdict["phases"]
    for p in named:
        op = ops[p["fault"]]
        assert op.process == "nemesis" and op.f in p["phase"] and op.value["target"] in p["phase"], (p, op)
