"""The cheat sheet's failover operations: a planned `patronictl switchover`
and an emergency `patronictl failover --force`, under load. Zero lost
writes; the write unavailability is measured against the planned-switchover
row (10 s)."""

import pytest

from conftest import assert_verdict

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("coordinator-members>=2"),
    pytest.mark.target("planned-switchover"),
]


@pytest.mark.parametrize("operation", ["switchover", "failover"])
def test_patronictl_operation(scenario_run, operation):
    with scenario_run(name=f"test_patronictl_{operation}") as run:
        old = run.leader()
        # A member Patroni accepts: the sync standby in synchronous mode, else a streaming replica.
        candidate = run.nemesis.resolve_node("candidate")
        action = run.nemesis.inject(operation, candidate)
        run.figures.update(old_leader=old, candidate=candidate,
                           new_leader=run.wait_for_new_leader(old, timeout_s=60))
        run.wait_for_recovery()
        run.nemesis.heal(action)
        assert run.figures["new_leader"] == candidate
    assert_verdict(run.verdict)
