"""Several hosts: the node holding a coordinator replica crashes. The leader keeps
its key; when the lost replica was the synchronous standby, commits wait until
the leader's walsender gives up on it (wal_sender_timeout) and Patroni names
another sync standby. Row node-failure (the guide's P1 "single node failure"). The
host's return is a runbook step, as in test_node_crash_leader: judged by
worker-failure when the host held a worker, ended when every pooled coordinator
backend reaches that worker again."""

import pytest
from node_steps import host_return, record_node_figures, replica_off_infra_node, workers_on

from conftest import assert_verdict

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("swarm-nodes", "node-control", "coordinator-members>=3"),
    pytest.mark.target("node-failure"),
]


def test_node_crash_replica(scenario_run, pgchaos_stack):
    with scenario_run() as run:
        replica = replica_off_infra_node(run.stack)
        workers = workers_on(run.stack, run.stack.deployment.node_of(replica).name)
        leader = run.leader()
        fault = run.nemesis.inject("node-crash", replica)
        run.wait_for_recovery()
        record_node_figures(run, fault)
        run.figures["replica"], run.figures["leader_kept"] = replica, run.leader() == leader
        run.figures["workers_on_node"] = workers
        host_return(run, fault, workers, "the crashed node rejoins: its tasks running again")
    assert run.figures["leader_kept"], f"the leader changed: {leader} -> {run.leader()}"
    assert_verdict(run.verdict)
