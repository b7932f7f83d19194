"""Several hosts: `docker node update --availability drain` of a node holding a
coordinator replica, under load (the way an operator empties a host for
maintenance). Its pinned member stops (Swarm stops its tasks) and stays down
until the node is active again. Row node-failure."""

import pytest
from node_steps import record_node_figures, replica_off_infra_node

from conftest import assert_verdict

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("swarm-nodes", "coordinator-members>=3"),
    pytest.mark.target("node-failure"),
]


def test_node_drain_under_load(scenario_run):
    with scenario_run() as run:
        replica = replica_off_infra_node(run.stack)
        fault = run.nemesis.inject("node-drain", replica)
        run.wait_for_recovery()
        record_node_figures(run, fault)
        run.figures["replica"] = replica
        run.nemesis.heal(fault)  # availability active; the member runs again
    assert_verdict(run.verdict)
