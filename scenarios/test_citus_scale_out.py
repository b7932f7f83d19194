"""Citus profile — scale out under load (the guide's scaling FAQ: deploy a new
worker, `citus_add_node`, `rebalance_table_shards()`): the compose file's
spare worker group 3 is started (Patroni registers its primary in
pg_dist_node itself; the guide's `citus_add_node` then runs as written),
and the shards are rebalanced onto it in the background
(`citus_rebalance_start()`, monitored with the guide's
`citus_rebalance_status()` until it finishes), all under load. Judged: no
acknowledged write lost, the unavailability the moves cause (RTO of the
scale-out op) within the row, the new group holding shards. Afterwards group 3
is drained and removed (the stack is left as found). The nemesis does not
know a scale-out: it is recorded in the history as a nemesis op with its
observation (group 3 holding placements), like the backup scenarios' faults.
Target citus-scale-out (ours: 10 s / RPO 0)."""

import time

import pytest
from citus_support import (
    SPARE_GROUP,
    GroupWriters,
    Runbook,
    SpareGroup,
    group_rows,
    per_group,
    retire_spare,
    wait_for,
)
from conftest import assert_verdict

from harness.history import Op
from harness.stack import citus

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.citus,
    pytest.mark.requires("citus", "worker-groups>=2", "guide-schema", "toxiproxy"),
    pytest.mark.target("citus-scale-out"),
]

GROUPS = [1, 2]
FINAL_STATES = ("finished", "failed", "cancelled")


def rebalance_state(dsn: str) -> str | None:
    """The state of the newest rebalance job (citus_rebalance_status()), None when there is none."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT state::text FROM citus_rebalance_status() ORDER BY job_id DESC LIMIT 1"
                           ).fetchone()
    return row[0] if row else None


def test_citus_scale_out(scenario_run):
    with scenario_run() as run:
        book = Runbook(run)
        run.figures["steps"] = book.steps  # the same list: kept even when a step raises
        dsn = book.dsn
        spare = SpareGroup(run)
        run.figures["placements_before"] = citus.placements_per_group(dsn)
        writers = GroupWriters(run, GROUPS).start()
        try:
            run.sleep(3)
            op = run.history.append("nemesis", "info", "scale-out", {"target": f"group {SPARE_GROUP}"})
            book.note("1. deploy the new worker group (compose profile spare)")
            spare.start()
            registered, _ = wait_for("Patroni registers group 3", lambda: SPARE_GROUP in citus.primaries(dsn),
                                     timeout_s=150, interval_s=1)
            assert registered, "the spare group's primary never appeared in pg_dist_node"
            host, port = citus.primaries(dsn)[SPARE_GROUP].split(":")
            book.note("1a. Patroni registered group 3 itself", rows=group_rows(dsn, SPARE_GROUP))
            book.sql("2. citus_add_node (as written)", "SELECT citus_add_node(%s, %s)", (host, int(port)))
            started = time.monotonic()
            book.sql("3. rebalance in the background: citus_rebalance_start()",
                     "SELECT citus_rebalance_start()", guide=False)
            done, state = wait_for("citus_rebalance_status() says finished",
                                   lambda: (s := rebalance_state(dsn)) in FINAL_STATES and s,
                                   timeout_s=280, interval_s=1)
            book.sql("4. monitor: citus_rebalance_status()", "SELECT job_id, state, job_type, details "
                     "FROM citus_rebalance_status()")
            run.figures["rebalance"] = {"state": state, "finished": done,
                                        "seconds": round(time.monotonic() - started, 1)}
            placed = citus.placements_per_group(dsn)
            run.figures["placements_after"] = placed
            if placed.get(SPARE_GROUP):
                run.history.append("observer", "ok", "fault-effect", {
                    "fault": op.index, "target": f"group {SPARE_GROUP}",
                    "evidence": f"group {SPARE_GROUP} holds {placed[SPARE_GROUP]} placements"})
            run.wait_for_recovery(timeout_s=60)
            run.history.append("nemesis", "info", "heal", {"target": f"group {SPARE_GROUP}", "fault": op.index})
            end = run.now()
            run.sleep(2)
        finally:
            writers.stop()
            run.phase("restore-topology")
            retire_spare(book, spare, "R")
        run.figures["placements_final"] = citus.placements_per_group(dsn)

        def scale_out(ops: list[Op]) -> dict:
            groups = per_group(ops, GROUPS, op.time, end)
            run.figures["per_group"] = groups
            bad = []
            if state != "finished":
                bad.append(f"the rebalance did not finish: {state}")
            if not run.figures["placements_after"].get(SPARE_GROUP):
                bad.append("the new group holds no shard after the rebalance")
            for g, res in groups.items():
                if res["lost"]:
                    bad.append(f"group {g}: {res['lost']} acknowledged writes lost")
            return {"valid": not bad, "reason": "; ".join(bad)}

        run.add_check("citus-scale-out", scale_out)
    assert_verdict(run.verdict)
