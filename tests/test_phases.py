"""The recovery-timeline checker (harness.checkers.phases) on synthetic
histories, the recorder's ops against the history contract, the timeline's
phase lane; and one live graceful stop of the leader on the reference stack."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from harness.checkers.availability import availability
from harness.checkers.phases import GOVERNED_BY, PHASES, explain, phases
from harness.checkers.rpo import rpo
from harness.checkers.rto import rto
from harness.history import OBSERVER, HistoryWriter, Op, read_history
from harness.load.phase_recorder import PHASE_CLUSTER, PHASE_PG, PHASE_WRITE

MEMBERS = ("c1", "c2", "c3")


class H:
    """A tiny history builder."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def add(self, t: float, process: int | str, typ: str, f: str, value: Any = None,
            node: str | None = None) -> H:
        self.ops.append(Op(len(self.ops), t, process, typ, f, value, node))  # type: ignore[arg-type]
        return self

    def cluster(self, t: float, leader: str | None) -> H:
        members = {m: ["leader" if m == leader else "replica", "running"] for m in MEMBERS}
        return self.add(t, OBSERVER, "ok", PHASE_CLUSTER, {"leader": leader, "members": members})

    def pg(self, t: float, member: str, state: str) -> H:
        return self.add(t, OBSERVER, "fail" if state == "down" else "ok", PHASE_PG,
                        {"member": member, "state": state}, node=member)

    def write_via(self, t: float, via: str, ok: bool) -> H:
        return self.add(t, OBSERVER, "ok" if ok else "fail", PHASE_WRITE, {"via": via}, node=via)

    def client(self, t: float, ok: bool, key: int) -> H:
        self.add(t - 0.01, 1, "invoke", "write", key)
        return self.add(t, 1, "ok" if ok else "fail", "write", key)

    def fault(self, t: float, f: str = "stop", target: str = "c1") -> H:
        return self.add(t, "nemesis", "info", f, {"target": target})

    def sorted(self) -> list[Op]:
        ops = sorted(self.ops, key=lambda op: op.time)
        for i, op in enumerate(ops):
            op.index = i
        return ops


def failover(router: bool = True, pooler: bool = True, kill: bool = False) -> list[Op]:
    """A leader c1 stopped at t=10: gone 10.3, key 10.6 (or expired 30.0 when killed),
    c2 primary 12.0 (31.0), router ok 13.5 (+19), pooler ok 14.0, clients ok 14.2."""
    h = H().cluster(0.1, "c1").pg(0.1, "c1", "primary").pg(0.1, "c2", "replica").pg(0.1, "c3", "replica")
    shift = 19.0 if kill else 0.0
    if router:
        h.write_via(0.2, "router", True).write_via(10.4, "router", False)
    if pooler:
        h.write_via(0.2, "pooler", True).write_via(10.5, "pooler", False)
    for k in range(0, 95):
        h.client(0.5 + k * 0.1, True, k)
    h.fault(10.0)
    h.pg(10.3, "c1", "down")
    h.cluster(10.6 + (19.4 if kill else 0.0), None)
    h.pg(12.0 + shift, "c2", "primary").cluster(12.1 + shift, "c2")
    h.client(10.8, False, 200)
    if router:
        h.write_via(13.5 + shift, "router", True)
    if pooler:
        h.write_via(14.0 + shift, "pooler", True)
    for k in range(20):
        h.client(14.2 + shift + k * 0.1, True, 300 + k)
    return h.sorted()


def by_name(result: dict[str, Any], fault: int = 0) -> dict[str, dict[str, Any]]:
    return {r["phase"]: r for r in result["faults"][fault]["phases"]}


def test_graceful_failover_has_every_phase_in_order() -> None:
    result = phases(failover())
    assert result["valid"] is True
    [f] = result["faults"]
    assert f["old_leader"] == "c1"
    assert [r["phase"] for r in f["phases"]] == list(PHASES)
    p = by_name(result)
    assert p["gone"]["at_s"] == pytest.approx(0.3)
    assert p["dcs"]["at_s"] == pytest.approx(0.6) and p["dcs"]["duration_s"] == pytest.approx(0.3)
    assert p["promoted"]["duration_s"] == pytest.approx(1.4)
    assert p["router"]["duration_s"] == pytest.approx(1.5)
    assert p["pooler"]["duration_s"] == pytest.approx(0.5)
    assert p["clients"]["at_s"] == pytest.approx(4.2)
    assert sum(r["duration_s"] for r in f["phases"]) == pytest.approx(p["clients"]["at_s"])
    assert f["slowest"] == "router" and f["governed_by"] == GOVERNED_BY["router"]
    assert explain(result) == "slowest phase: router 1.5 s (HAProxy inter/fall/rise)"


def test_hard_kill_is_governed_by_the_dcs_ttl() -> None:
    result = phases(failover(kill=True))
    f = result["faults"][0]
    assert f["slowest"] == "dcs"
    assert by_name(result)["dcs"]["at_s"] == pytest.approx(20.0)
    assert "Patroni ttl" in f["governed_by"]
    assert explain(result).startswith("slowest phase: dcs 19.7 s (Patroni ttl/loop_wait/retry_timeout)")


def test_phases_a_stack_does_not_have_are_absent_not_zero() -> None:
    result = phases(failover(pooler=False))
    names = [r["phase"] for r in result["faults"][0]["phases"]]
    assert "pooler" not in names and names[-1] == "clients"
    # clients' duration then runs from the router's success
    assert by_name(result)["clients"]["duration_s"] == pytest.approx(0.7)
    result = phases(failover(router=False, pooler=False))
    assert [r["phase"] for r in result["faults"][0]["phases"]] == ["gone", "dcs", "promoted", "clients"]


def test_crash_of_the_postmaster_keeps_the_key_and_the_same_leader() -> None:
    h = H().cluster(0.1, "c1").pg(0.1, "c1", "primary").pg(0.1, "c2", "replica")
    h.write_via(0.2, "router", True).fault(5.0, "pg-kill", "c1")
    h.pg(5.1, "c1", "down").write_via(5.2, "router", False).pg(7.0, "c1", "replica").pg(7.9, "c1", "primary")
    h.write_via(8.4, "router", True).client(8.5, True, 1)
    result = phases(h.sorted())
    p = by_name(result)
    assert list(p) == ["gone", "promoted", "router", "clients"]  # no DCS phase: the key was kept
    assert p["promoted"]["at_s"] == pytest.approx(2.9) and result["faults"][0]["slowest"] == "promoted"


def test_a_new_primary_seen_just_before_the_old_one_is_seen_gone_still_counts() -> None:
    h = H().cluster(0.1, "c1").pg(0.1, "c1", "primary").pg(0.1, "c2", "replica")
    h.fault(5.0, "switchover", "c2").pg(6.0, "c2", "primary").pg(6.1, "c1", "down").cluster(6.2, "c2")
    p = by_name(phases(h.sorted()))
    assert p["promoted"]["at_s"] == pytest.approx(1.0)
    assert p["promoted"]["duration_s"] == 0.0  # observed out of order: never negative
    assert p["dcs"]["at_s"] == pytest.approx(1.2)


def test_a_straggler_write_before_promotion_is_not_the_router_recovering() -> None:
    h = H().cluster(0.1, "c1").pg(0.1, "c1", "primary").pg(0.1, "c2", "replica")
    h.write_via(0.2, "router", True).fault(5.0).pg(5.2, "c1", "down")
    h.write_via(5.3, "router", False).pg(9.0, "c2", "primary").write_via(11.0, "router", True)
    assert by_name(phases(h.sorted()))["router"]["at_s"] == pytest.approx(6.0)
    # ... but a router success sampled just before the promotion sample is taken
    h2 = H().cluster(0.1, "c1").pg(0.1, "c1", "primary").pg(0.1, "c2", "replica")
    h2.write_via(0.2, "router", True).fault(5.0).pg(5.2, "c1", "down")
    h2.write_via(5.3, "router", False).write_via(8.95, "router", True).pg(9.0, "c2", "primary")
    assert by_name(phases(h2.sorted()))["router"]["at_s"] == pytest.approx(3.95)


def test_a_fault_that_leaves_the_leader_alone_has_no_phases() -> None:
    h = H().cluster(0.1, "c1").pg(0.1, "c1", "primary").pg(0.1, "c3", "replica")
    h.fault(2.0, "kill", "c3").pg(2.1, "c3", "down").client(2.5, True, 1)
    result = phases(h.sorted())
    assert result["valid"] is True
    assert result["faults"][0]["phases"] == [] and result["faults"][0]["slowest"] is None
    assert explain(result).startswith("no recovery timeline")


def test_two_faults_each_get_their_own_timeline() -> None:
    h = H().cluster(0.1, "c1").pg(0.1, "c1", "primary").pg(0.1, "c2", "replica")
    h.fault(5.0, "stop", "c1").pg(5.2, "c1", "down").cluster(5.4, None).pg(7.0, "c2", "primary")
    h.cluster(7.1, "c2").client(7.5, True, 1)
    h.pg(20.0, "c1", "replica").fault(30.0, "stop", "c2").pg(30.3, "c2", "down").cluster(30.5, None)
    h.pg(33.0, "c1", "primary").client(33.4, True, 2)
    result = phases(h.sorted())
    first, second = result["faults"]
    assert first["old_leader"] == "c1" and second["old_leader"] == "c2"
    assert by_name(result, 1)["promoted"]["at_s"] == pytest.approx(3.0)
    assert by_name(result, 1)["clients"]["at_s"] == pytest.approx(3.4)
    assert explain(result).count("slowest phase") == 2


def test_without_samples_the_answer_is_unknown_never_invalid() -> None:
    h = H().fault(1.0).client(2.0, True, 1)
    result = phases(h.sorted())
    assert result["valid"] == "unknown" and "recorder" in result["error"]


def test_recorder_ops_are_not_client_load_and_old_readers_accept_them(tmp_path: Path) -> None:
    ops = failover()
    plain = [op for op in ops if op.process != OBSERVER]
    for checker in (rto, availability, rpo):
        assert json.dumps(checker(ops), default=str) == json.dumps(checker(plain), default=str)
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path) as w:
        for op in ops:
            w.append(op.process, op.type, op.f, op.value, node=op.node, time=op.time)
    assert [op.f for op in read_history(path)] == [op.f for op in ops]


def test_the_timeline_draws_a_bar_per_phase(tmp_path: Path) -> None:
    from harness.report.timeline import PHASE_BAR_GID, Timeline, build_figure, render_timeline

    ops = failover()
    fig = build_figure(Timeline.from_ops(ops), None, "failover")
    bars = [p for ax in fig.axes for p in ax.patches if p.get_gid() == PHASE_BAR_GID]
    assert len(bars) == len(PHASES)
    path = tmp_path / "h.jsonl"
    path.write_text("".join(op.to_json() + "\n" for op in ops))
    assert render_timeline(path, None, tmp_path / "t.png").stat().st_size > 0
    none = build_figure(Timeline.from_ops([op for op in ops if op.process != OBSERVER]), None, "x")
    assert not [p for ax in none.axes for p in ax.patches if p.get_gid() == PHASE_BAR_GID]


# -- live ----------------------------------------------------------------------------------


@pytest.mark.docker
def test_graceful_stop_of_the_leader_phases_in_order(pgchaos_stack, tmp_path: Path) -> None:
    """`docker stop` of the leader on the reference stack: gone -> key released ->
    promoted -> router -> pooler -> clients, in order, in a few seconds (DESIGN: ~4.6 s)."""
    from harness.load.client import key_base
    from harness.load.phase_recorder import PhaseRecorder
    from harness.load.probe import Probe
    from harness.nemesis import Nemesis
    from harness.stack.steady_state import wait_for_steady_state

    stack = pgchaos_stack
    history = HistoryWriter(tmp_path / "history.jsonl")
    nemesis = Nemesis(stack, history)
    nemesis.heal_all()
    assert wait_for_steady_state(stack, timeout=60).healthy
    probe = Probe(stack.dsn(), history, key_base()).start()
    recorder = PhaseRecorder(stack, history).start()
    nemesis.listeners.append(lambda verb, f: recorder.start_writes() if verb == "inject" else None)
    try:
        time.sleep(2.0)
        fault = nemesis.inject("stop", "primary")
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not (probe.stable_for(2.0) and time.monotonic()
                                                    - probe.last_failure["write"] > 2.0):
            time.sleep(0.25)
    finally:
        recorder.stop()
        probe.stop()
        nemesis.heal_all()
        history.close()
    result = phases(read_history(tmp_path / "history.jsonl"))
    [f] = result["faults"]
    assert f["old_leader"] == fault.target
    rows = f["phases"]
    names = [r["phase"] for r in rows]
    assert names == [p for p in PHASES if p in names]
    assert {"gone", "dcs", "promoted", "router", "clients"} <= set(names), rows
    assert "pooler" not in names, rows  # the recorder writes through the router only
    ats = [r["at_s"] for r in rows]
    assert all(0 <= a <= 30 for a in ats), rows
    assert 1.0 <= by_name(result)["clients"]["at_s"] <= 20.0, rows  # a graceful stop: seconds, not 0 or the ttl
    assert by_name(result)["promoted"]["at_s"] >= by_name(result)["gone"]["at_s"], rows
    assert explain(result).startswith("slowest phase: ")
    assert wait_for_steady_state(stack, timeout=60).healthy


def test_a_failing_or_waived_rto_names_its_slowest_phase_in_the_verdict() -> None:
    from harness.targets import load_targets
    from harness.verdict import check_history

    targets = load_targets()
    row = targets.row("coordinator-failure")
    slow = check_history(failover(kill=True), row, targets.waivers_for("coordinator-failure"))
    assert slow["verdict"] in ("fail", "waived", "unknown")
    explained = [f for f in slow["findings"] if f["code"] in ("rto-waived", "rto-over-target")]
    assert explained and all("slowest phase: dcs" in f["text"] for f in explained)
    assert "Patroni ttl/loop_wait/retry_timeout" in explained[0]["text"]
    assert slow["recovery_phases"]["faults"][0]["slowest"] == "dcs"
    assert any(n.startswith("slowest phase: dcs") for n in slow["notes"])


def grouped(worker_fault: bool) -> list[Op]:
    """A coordinator group (c1 leader) and a Citus worker group w1 (w1a leader, w1b standby),
    each recorded in its own lane; a stop of w1a (or of c1) at t=10."""
    h = H()

    def lane(t: float, group: str, role: str, members: tuple[str, ...], leader: str | None) -> None:
        h.add(t, OBSERVER, "ok", PHASE_CLUSTER, {
            "leader": leader, "group": group, "role": role,
            "members": {m: ["leader" if m == leader else "replica", "running"] for m in members}})

    def pg(t: float, member: str, state: str, group: str) -> None:
        h.add(t, OBSERVER, "fail" if state == "down" else "ok", PHASE_PG,
              {"member": member, "state": state, "group": group}, node=member)

    lane(0.1, "coordinator", "coordinator", MEMBERS, "c1")
    lane(0.1, "w1", "worker", ("w1a", "w1b"), "w1a")
    for m, st in (("c1", "primary"), ("c2", "replica"), ("c3", "replica")):
        pg(0.1, m, st, "coordinator")
    pg(0.1, "w1a", "primary", "w1")
    pg(0.1, "w1b", "replica", "w1")
    for k in range(0, 95):
        h.client(0.5 + k * 0.1, True, k)
    h.fault(10.0, target="w1a" if worker_fault else "c1")
    if worker_fault:
        pg(10.4, "w1a", "down", "w1")
        lane(11.0, "w1", "worker", ("w1a", "w1b"), None)
        pg(13.0, "w1b", "primary", "w1")
        lane(13.2, "w1", "worker", ("w1a", "w1b"), "w1b")
    else:
        pg(10.3, "c1", "down", "coordinator")
        lane(10.6, "coordinator", "coordinator", MEMBERS, None)
        pg(12.0, "c2", "primary", "coordinator")
        lane(12.1, "coordinator", "coordinator", MEMBERS, "c2")
    h.client(10.8, False, 200)
    for k in range(20):
        h.client(14.5 + k * 0.1, True, 300 + k)
    return h.sorted()


def test_a_worker_group_fault_is_timed_in_its_own_lane() -> None:
    (f,) = phases(grouped(worker_fault=True))["faults"]
    at = {r["phase"]: r["at_s"] for r in f["phases"]}
    assert f["group"] == "w1" and f["old_leader"] == "w1a", f
    assert at["gone"] == pytest.approx(0.4) and at["dcs"] == pytest.approx(1.0)
    assert at["promoted"] == pytest.approx(3.0)  # w1b, not a coordinator member that was always primary


def test_a_coordinator_fault_ignores_the_worker_lanes() -> None:
    (f,) = phases(grouped(worker_fault=False))["faults"]
    at = {r["phase"]: r["at_s"] for r in f["phases"]}
    assert f["group"] == "coordinator" and f["old_leader"] == "c1", f
    assert at["dcs"] == pytest.approx(0.6) and at["promoted"] == pytest.approx(2.0)
