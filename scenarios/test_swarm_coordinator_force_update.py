"""Swarm: the guide's `docker service update --force postgres-mesh_coordinator`
(DR scenario 1's "replace failed coordinator", and the troubleshooting
section's way to apply a config change), under load.

As written: the guide's coordinator is one 3-replica service; here each
Patroni member is its own service, so the update is emulated the way Swarm
updates a 3-task service with the default update config (parallelism 1,
stop-first, slot order, blind to who leads): one member at a time, the next
once the new task runs (healthy). Safer variant, for comparison: the replicas
first, then a switchover to an updated replica, then the old leader. Both are
judged against coordinator-failure (10 s / RPO 0); figures: promotions, leader changes,
unavailability, lost writes, clients dropped."""

import pytest
from swarm_steps import record_dropped, timeline_switches, update_one_at_a_time

from conftest import assert_verdict

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("swarm", "coordinator-members>=3"),
    pytest.mark.target("coordinator-failure"),
]


def test_force_update_coordinator_as_written(scenario_run):
    with scenario_run() as run:
        switches = timeline_switches(run)
        members = sorted(run.stack.manifest.coordinator.members)  # slot order, not role order
        update_one_at_a_time(run, "service-force-update", members)
        run.wait_for_recovery()
        after = timeline_switches(run)
        run.figures["promotions"] = None if None in (switches, after) else after - switches
        record_dropped(run)
    assert_verdict(run.verdict)


def test_force_update_coordinator_replicas_first(scenario_run):
    with scenario_run() as run:
        switches = timeline_switches(run)
        leader = run.leader()
        replicas = sorted(m for m in run.stack.manifest.coordinator.members if m != leader)
        update_one_at_a_time(run, "service-force-update", replicas)
        run.wait_for_recovery()
        run.wait_until("an updated replica is the sync standby", lambda: run.nemesis.resolve_node("candidate")
                       in replicas, timeout_s=60)
        switchover = run.nemesis.inject("switchover", run.nemesis.resolve_node("candidate"))
        run.wait_for_new_leader(leader, timeout_s=60)
        run.nemesis.heal(switchover)
        run.wait_for_recovery()
        update_one_at_a_time(run, "service-force-update", [leader])
        run.wait_for_recovery()
        after = timeline_switches(run)
        run.figures["promotions"] = None if None in (switches, after) else after - switches
        record_dropped(run)
    assert_verdict(run.verdict)
