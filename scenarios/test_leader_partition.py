"""Partition of the leader from etcd, the replicas and the router (docker
network disconnect). It must demote itself; a replica takes over; at no
sampled moment are two coordinators writable (direct probes through docker
exec, bypassing the network). RPO 0 with synchronous mode. Target
leader-partition (30 s / RPO 0)."""

import pytest

from conftest import add_split_brain_check, assert_verdict
from harness.load.writable_probe import WritableProbe

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    # `partition`: the member cut off the stack network (compose); on Swarm a task cannot leave
    # its overlay, and several hosts cut the leader's whole host (test_node_cut_leader)
    pytest.mark.requires("replication-links", "partition"),
    pytest.mark.target("leader-partition"),
    pytest.mark.alerts("PatroniMemberDown"),  # Prometheus no longer reaches the cut-off leader
]


def test_leader_partition(scenario_run):
    with scenario_run() as run:
        probe = WritableProbe(run.stack, run.stack.manifest.coordinator.members, run.history, period_s=0.5).start()
        try:
            run.sleep(2)
            fault = run.nemesis.inject("partition", "primary")
            run.figures["new_leader"] = run.wait_for_new_leader(fault.target, timeout_s=60)
            run.figures["partitioned"] = fault.target
            run.sleep(4)
            run.nemesis.heal(fault)
            run.wait_for_recovery()
        finally:
            probe.stop()
        run.figures["writable_samples"] = probe.rounds

        add_split_brain_check(run)
    assert_verdict(run.verdict)
