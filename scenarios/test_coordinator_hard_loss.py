"""Operations guide, Disaster Recovery, Scenario 1 (single coordinator failure):
`docker kill` of the Patroni leader; Patroni promotes a replica on its own.
Target row coordinator-failure (10 s / RPO 0); a hard loss is bounded by
Patroni's ttl floor (20 s), so the gate applies the documented waiver."""

import pytest

from conftest import assert_verdict

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("coordinator-members>=2"),
    pytest.mark.target("coordinator-failure"),
    # the on-call is paged: the killed member; until the leader key expires (ttl 20 s), no leader,
    # nothing behind HAProxy's :5000, and the replicas without their upstream
    pytest.mark.alerts("PatroniMemberDown", "PatroniLeaderMissing", "HAProxyPrimaryWithoutServers",
                       "ReplicaNotStreaming"),
]


def test_coordinator_hard_loss(scenario_run):
    with scenario_run() as run:
        fault = run.nemesis.inject("kill", "primary")
        new_leader = run.wait_for_new_leader(fault.target, timeout_s=60)
        run.figures["old_leader"], run.figures["new_leader"] = fault.target, new_leader
        run.wait_for_recovery()  # writes must stay successful after the failover
        run.nemesis.heal(fault)  # the runbook's "replace failed coordinator"
    assert_verdict(run.verdict)
