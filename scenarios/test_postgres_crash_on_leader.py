"""PostgreSQL crash on the leader while Patroni stays alive (SIGKILL of the
postmaster): Patroni restarts PostgreSQL in place or fails over.
Target coordinator-failure (10 s / RPO 0), no waiver."""

import pytest

from conftest import assert_verdict
from harness.stack.steady_state import check_leader
from harness.stack.topology import discover

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.target("coordinator-failure"),
    pytest.mark.alerts("PostgresRestarted"),  # Patroni restarts the postmaster in place
]


def test_postgres_crash_on_leader(scenario_run):
    with scenario_run() as run:
        fault = run.nemesis.inject("pg-kill", "primary")
        run.sleep(1)
        run.wait_until("a single running leader again",
                       lambda: check_leader(discover(run.stack)).ok, timeout_s=60)
        run.figures["crashed_on"] = fault.target
        run.figures["leader_after"] = run.leader()
        run.wait_for_recovery()
        run.nemesis.heal(fault)
    assert_verdict(run.verdict)
