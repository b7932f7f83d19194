"""DCS outage: etcd stopped for 15 s under load (every member of it: on a
multi-member DCS, one member lost is dcs_member_loss). Without failsafe mode
Patroni demotes the leader once it cannot renew its key, so writes stop;
the cluster returns when etcd does. Target dcs-outage (60 s / RPO 0)."""

import pytest

from conftest import assert_verdict
from harness.stack.steady_state import check_leader
from harness.stack.topology import discover

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.target("dcs-outage"),
    pytest.mark.alerts("EtcdUnreachable"),
]


def test_etcd_outage(scenario_run):
    with scenario_run() as run:
        leader = run.leader()
        fault = run.nemesis.inject("etcd-outage", "dcs", members=len(run.stack.manifest.dcs.members))
        run.sleep(15)
        run.figures["leader_before"] = leader
        run.figures["leader_during_outage"] = run.leader()
        run.nemesis.heal(fault)
        run.wait_until("a single leader after etcd returns",
                       lambda: check_leader(discover(run.stack)).ok, timeout_s=60)
        run.figures["leader_after"] = run.leader()
        run.wait_for_recovery()
    assert_verdict(run.verdict)
