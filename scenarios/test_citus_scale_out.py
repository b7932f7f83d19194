"""Citus profile — scale out under load (the guide's scaling FAQ: deploy a new
worker, `citus_add_node`, `rebalance_table_shards()`): the manifest's spare
worker group (`[[groups]]` with `spare = true`: worker-3, Citus group 3) is
started (Patroni registers its primary in pg_dist_node itself; the guide's
`citus_add_node` then runs as written), and the shards are rebalanced onto it
in the background (`citus_rebalance_start()`, monitored with the guide's
`citus_rebalance_status()` until it finishes), all under load. The rebalance
is the fault (the nemesis' custom fault, observed in
citus_rebalance_status()): RTO runs from its start to the last write
disruption it causes; no acknowledged write may be lost, no group's writes may
stall longer than 5 s, and the new group must hold shards. Bank transfers
across worker groups run throughout (their shards are moved too): none may be
lost, doubled or half-applied, and no prepared transaction may outlive the
row's bound. Afterwards the
spare group is drained, killed and removed (the stack is left as found).
Target citus-scale-out (ours: 120 s / RPO 0)."""

import time

import pytest
from citus_support import GroupWriters, per_group, start_bank, writer_process

from conftest import assert_verdict
from harness.citus_runbooks import Runbook, SpareGroup, group_rows, retire_spare, wait_for
from harness.history import Op
from harness.stack import citus

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.citus,
    pytest.mark.requires("citus", "worker-groups>=2", "spare-groups", "spare-services", "toxiproxy"),
    pytest.mark.target("citus-scale-out"),
]

GROUPS = [1, 2]
MAX_GAP_S = 5.0  # the longest write stall a shard move may cause
FINAL_STATES = ("finished", "failed", "cancelled")


def rebalance_state(dsn: str) -> str | None:
    """The state of the newest rebalance job (citus_rebalance_status()), None when there is none."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT state::text FROM citus_rebalance_status() ORDER BY job_id DESC LIMIT 1"
                           ).fetchone()
    return row[0] if row else None


def longest_gaps(ops: list[Op], start: float, end: float) -> dict[int, float]:
    """Per group writer: the longest time between two acknowledged writes in [start, end]."""
    out = {}
    for g in GROUPS:
        oks = [o.time for o in ops if o.process == writer_process(g) and o.f == "write" and o.type == "ok"
               and start <= o.time <= end]
        out[g] = round(max((b - a for a, b in zip(oks, oks[1:], strict=False)), default=end - start), 3)
    return out


def test_citus_scale_out(scenario_run):
    with scenario_run() as run:
        book = Runbook(run)
        run.figures["steps"] = book.steps  # the same list: kept even when a step raises
        dsn = book.dsn
        spare = SpareGroup(run)  # the manifest's spare group ([[groups]] spare = true)
        new = spare.citus_group
        run.figures["placements_before"] = citus.placements_per_group(dsn)
        writers = GroupWriters(run, GROUPS).start()
        try:
            bank = start_bank(run)  # transfers across worker groups throughout (their shards move too)
            run.sleep(2)
            book.note(f"1. deploy the new worker group {spare.group.name} (compose profile "
                      f"{spare.group.compose_profile})")
            spare.start()
            registered, _ = wait_for(f"Patroni registers group {new}", lambda: new in citus.primaries(dsn),
                                     timeout_s=150, interval_s=1)
            assert registered, "the spare group's primary never appeared in pg_dist_node"
            host, port = citus.primaries(dsn)[new].split(":")
            book.note(f"1a. Patroni registered group {new} itself", rows=group_rows(dsn, new))
            book.sql("2. citus_add_node (as written)", "SELECT citus_add_node(%s, %s)", (host, int(port)))
            run.sleep(2)
            started = time.monotonic()

            def start_rebalance():
                step = book.sql("3. rebalance in the background: citus_rebalance_start()",
                                "SELECT citus_rebalance_start()", guide=False)
                if not step["ok"]:
                    raise RuntimeError(step["error"])
                return lambda: None  # a rebalance is not undone; the restore drains group 3

            def rebalancing() -> tuple[bool, str]:
                state = rebalance_state(dsn)
                return state is not None, f"citus_rebalance_status(): newest job {state}"

            op = run.nemesis.custom("rebalance", f"group {new}", start_rebalance, rebalancing)
            done, state = wait_for("citus_rebalance_status() says finished",
                                   lambda: (s := rebalance_state(dsn)) in FINAL_STATES and s,
                                   timeout_s=280, interval_s=1)
            book.sql("4. monitor: citus_rebalance_status()", "SELECT job_id, state, job_type, details "
                     "FROM citus_rebalance_status()")
            run.figures["rebalance"] = {"state": state, "finished": done,
                                        "seconds": round(time.monotonic() - started, 1)}
            run.figures["placements_after"] = citus.placements_per_group(dsn)
            run.wait_for_recovery(timeout_s=60)
            run.wait_until("transfers committing after the rebalance", lambda: bank.stable_for(2.0),
                           timeout_s=90, interval_s=0.25)
            run.figures["bank"] = bank.figures()
            run.nemesis.heal(op)
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
            gaps = longest_gaps(ops, op.time, end)
            run.figures["longest_write_gap_s"] = gaps
            bad = []
            if max(gaps.values(), default=0.0) > MAX_GAP_S:
                bad.append(f"writes stalled longer than {MAX_GAP_S:.0f} s during the rebalance: {gaps}")
            if state != "finished":
                bad.append(f"the rebalance did not finish: {state}")
            if not run.figures["placements_after"].get(new):
                bad.append("the new group holds no shard after the rebalance")
            for g, res in groups.items():
                if res["lost"]:
                    bad.append(f"group {g}: {res['lost']} acknowledged writes lost")
            return {"valid": not bad, "reason": "; ".join(bad)}

        run.add_check("citus-scale-out", scale_out)
    assert_verdict(run.verdict)
