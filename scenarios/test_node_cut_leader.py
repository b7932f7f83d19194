"""Several hosts: the node holding the coordinator leader is cut off from the others
(its network disconnected; its engine keeps running its tasks, as a partitioned host
does). Patroni on the cut node can no longer reach etcd and must demote its member;
a member on another host is promoted once the leader key expires. At no sampled
moment may two members acknowledge writes: each member is probed directly on every
node's own engine — the cut node included, which the managers have written off — so
an old leader still taking writes there would be seen (split-brain check). The
node's return is a runbook step (judged by worker-failure when it held a worker).
Target leader-partition (30 s / RPO 0)."""

import pytest
from node_steps import (
    host_return,
    leader_off_infra_node,
    record_node_figures,
    states_on_every_node,
    workers_on,
)

from conftest import add_split_brain_check, assert_verdict
from harness.load.writable_probe import WritableProbe

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("swarm-nodes", "node-control", "coordinator-members>=3"),
    pytest.mark.target("leader-partition"),
]


def test_node_cut_leader(scenario_run, pgchaos_stack):
    placed = leader_off_infra_node(pgchaos_stack)
    workers = workers_on(pgchaos_stack, placed["node"])
    with scenario_run() as run:
        run.figures.update(placed, workers_on_node=workers)
        probe = WritableProbe(run.stack, run.stack.manifest.coordinator.members, run.history, period_s=0.5,
                              states=states_on_every_node(run.stack)).start()
        try:
            fault = run.nemesis.inject("node-cut", "primary")
            new_leader = run.wait_for_new_leader(fault.target, timeout_s=90)
            run.figures["old_leader"], run.figures["new_leader"] = fault.target, new_leader
            run.wait_for_recovery()
            record_node_figures(run, fault)
            run.sleep(4)  # the cut-off node runs on: its member must stay demoted
            host_return(run, fault, workers, "the cut-off node reconnects: its tasks running again")
        finally:
            probe.stop()
        run.figures["writable_samples"] = probe.rounds

        add_split_brain_check(run)
    assert_verdict(run.verdict)
