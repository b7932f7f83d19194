"""One DCS member lost (hard kill) on a stack with three or more: etcd keeps
its quorum, so the Patroni leader keeps its key and writes never stop.
Target dcs-outage (60 s / RPO 0); the expected RTO is about zero."""

import pytest

from conftest import assert_verdict

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("dcs-members>=3"),
    pytest.mark.target("dcs-outage"),
    pytest.mark.alerts("EtcdUnreachable"),
]


def test_dcs_member_loss(scenario_run):
    with scenario_run() as run:
        leader = run.leader()
        fault = run.nemesis.inject("kill", "dcs")
        run.sleep(10)
        run.figures.update(dcs_member=fault.target, leader_before=leader, leader_during=run.leader())
        run.nemesis.heal(fault)
        run.wait_for_recovery()
    assert run.figures["leader_during"] == leader, "a quorum-keeping DCS loss must not move the leader"
    assert_verdict(run.verdict)
