"""Several hosts: the node holding the coordinator leader crashes (`docker kill` of
the whole host, every task on it gone at once). Patroni promotes a member on
another host once the leader key expires; the lost member's task stays pending
(pinned to its host with its data) until the node rejoins. Swarm's own
detection (node marked down) is reported as a phase. Target row
coordinator-failure (10 s / RPO 0); like any hard loss of the leader it is
bounded by Patroni's ttl, so the hard-kill waiver applies (≤ 25 s). A worker the
host held (one-member worker groups are spread over the nodes) is down with it:
what fails on its shards until the node is back is judged by the worker-failure
row (the guide's single worker failure, 5 min), not the coordinator's. The node is
back when every pooled coordinator backend reaches its worker again: the task
returns on a new address, and a backend whose connection still points at the old
one fails once on its statement timeout (figure worker_reached_after_s)."""

import pytest
from node_steps import leader_host_lost

from conftest import assert_verdict

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("swarm-nodes", "node-control", "coordinator-members>=3"),
    pytest.mark.target("coordinator-failure"),
]


def test_node_crash_leader(scenario_run, pgchaos_stack):
    # the node rejoins and its tasks run again there (the member, and any worker it held)
    run = leader_host_lost(scenario_run, pgchaos_stack, "node-crash",
                           "the crashed node rejoins: its tasks running again", new_leader_timeout_s=90)
    assert_verdict(run.verdict)
