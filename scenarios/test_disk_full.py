"""Disk full on the leader's data volume (its loop-mounted ext4 filled to
ENOSPC) for 15 s under load. Writes must fail cleanly (nothing acknowledged
lost, nothing corrupted); once space is freed the cluster recovers by itself
(Patroni restarts PostgreSQL or fails over). Target disk-full (60 s / RPO 0)."""

import psycopg
import pytest
from conftest import assert_verdict

from harness.stack.steady_state import steady_state

pytestmark = [pytest.mark.scenario, pytest.mark.docker, pytest.mark.target("disk-full")]

HOLD_S = 15.0


def test_disk_full_on_leader(scenario_run):
    with scenario_run() as run:
        fault = run.nemesis.inject("disk-full", "primary")
        run.figures["full_node"] = fault.target
        run.sleep(HOLD_S)
        run.figures["health_during"] = {c.name: c.detail for c in steady_state(run.stack).failing()}
        run.nemesis.heal(fault)  # the guide's "clean up": free the space
        run.sleep(6)
    assert_verdict(run.verdict)
    # no corruption: every table is readable end to end after recovery
    with psycopg.connect(run.stack.dsn(), autocommit=True) as conn:
        for table in ("ledger", "users", "events", "vectors"):
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()
