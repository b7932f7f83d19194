"""Single coordinator failure, graceful: `docker stop` of the Patroni leader.
Patroni releases the leader key on shutdown, so a replica takes over without
waiting for the ttl. Target coordinator-failure (10 s / RPO 0), no waiver."""

import pytest

from conftest import assert_verdict

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("coordinator-members>=2"),
    pytest.mark.target("coordinator-failure"),
    pytest.mark.alerts("PatroniMemberDown"),  # the stopped member no longer answers
]


def test_coordinator_graceful_stop(scenario_run):
    with scenario_run() as run:
        fault = run.nemesis.inject("stop", "primary")
        run.figures["new_leader"] = run.wait_for_new_leader(fault.target, timeout_s=60)
        run.figures["old_leader"] = fault.target
        run.wait_for_recovery()
        # the stopped member stays down until paged, as it would until someone restarted it
        # (bounded by the time-to-detect target; at once on a stack without alerting)
        run.wait_for_alert("PatroniMemberDown", since=fault.time, timeout_s=60)
        run.nemesis.heal(fault)
    assert_verdict(run.verdict)
