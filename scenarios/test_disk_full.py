"""Disk full on the leader's data volume (its loop-mounted ext4 filled to
ENOSPC) under load until the on-call is paged (at most 15 s). Writes must fail cleanly (nothing acknowledged
lost, nothing corrupted); once space is freed the cluster recovers by itself
(Patroni restarts PostgreSQL or fails over). Target disk-full (60 s / RPO 0)."""

import psycopg
import pytest

from conftest import assert_verdict
from harness.stack.steady_state import steady_state

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("loop-volumes"),
    pytest.mark.target("disk-full"),
    pytest.mark.alerts("DataVolumeUsageHigh", "DataVolumeUsageCritical"),
]

HOLD_S = 15.0


def test_disk_full_on_leader(scenario_run):
    with scenario_run() as run:
        fault = run.nemesis.inject("disk-full", "primary")
        run.figures["full_node"] = fault.target
        try:  # a bulk write must fail with a clean error, not hang or be acknowledged
            with psycopg.connect(run.stack.dsn(fault.target), autocommit=True) as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS disk_ballast (pad text)")
                conn.execute("INSERT INTO disk_ballast SELECT repeat('x', 1000) FROM generate_series(1, 20000)")
            run.figures["bulk_write"] = "acknowledged"
        except psycopg.Error as exc:
            run.figures["bulk_write"] = f"{exc.sqlstate}: {str(exc).strip().splitlines()[0]}"
        # the disk stays full until the on-call is paged (DataVolumeUsageCritical), at most HOLD_S;
        # the whole HOLD_S on a stack without alerting
        held_from = run.now()
        run.figures["paged_after_s"] = run.wait_for_alert("DataVolumeUsageCritical", since=fault.time,
                                                          timeout_s=HOLD_S)
        run.sleep(max(0.0, HOLD_S - (run.now() - held_from)) if run.figures["paged_after_s"] is None else 1.0)
        run.figures["health_during"] = {c.name: c.detail for c in steady_state(run.stack).failing()}
        run.nemesis.heal(fault)  # the guide's "clean up": free the space
        run.wait_for_recovery()
    assert_verdict(run.verdict)
    assert run.figures["bulk_write"] != "acknowledged", "a 20 MB write was acknowledged on a full disk"
    # no corruption: every table is readable end to end after recovery
    with psycopg.connect(run.stack.dsn(), autocommit=True) as conn:
        for table in ("pgchaos.ledger", "pgchaos.events", "users", "events", "vectors"):
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        conn.execute("DROP TABLE IF EXISTS disk_ballast")
