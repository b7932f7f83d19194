"""Several hosts: the node holding the coordinator leader is shut down in order
(`docker stop` of the whole host: its engine stops every task on it gracefully
within the host's grace period, as a host's own shutdown does). Patroni's leader
stops on SIGTERM and releases its key, so a replica takes over without waiting
for the ttl: row coordinator-failure (10 s / RPO 0), no waiver. Swarm's detection
(node marked down) is a phase. A worker the host held is down until the node is
back: its return is a runbook step judged by worker-failure, ended when every pooled
coordinator backend reaches that worker again (as in test_node_crash_leader)."""

import pytest
from node_steps import leader_host_lost

from conftest import assert_verdict

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("swarm-nodes", "node-control", "coordinator-members>=3"),
    pytest.mark.target("coordinator-failure"),
]


def test_node_stop_leader(scenario_run, pgchaos_stack):
    run = leader_host_lost(scenario_run, pgchaos_stack, "node-stop",
                           "the stopped node is started again: its tasks running again", new_leader_timeout_s=60)
    assert_verdict(run.verdict)
