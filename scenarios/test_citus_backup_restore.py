"""Citus profile — the guide's daily backup with the Citus metadata export,
then complete cluster loss (DR scenario 3) restored as the guide says,
including restore step 5 (`citus_add_node` of the workers). Scripts:
compose/scripts/citus/ (`daily-backup.sh`, `restore.sh --yes`), run in the
toolbox container on the stack network; each guide step runs as written and
reports its outcome, failures included (recorded in the figures).

The cluster loss (every container and data volume destroyed, a new cluster
deployed) is the nemesis' custom fault `cluster-loss`, observed as "no
container left". After the guide's restore the data is back but only as
plain tables on the coordinator (a pg_dumpall of a Citus coordinator carries
the rows, not the distribution); the working procedure then distributes
every table again from the backup's distribution export
(`citus_distribution_<ts>.csv`: create_distributed_table with the same
column, shard count and co-location, create_reference_table), after which
the shards are on the workers again. Traffic stops at the fault and resumes
once restored; RTO from the fault to traffic succeeding again, RPO = the age
of the backup. Target complete-cluster-loss (2 h / 24 h)."""

from __future__ import annotations

import csv
import time

import psycopg
import pytest

from conftest import assert_verdict
from harness.citus_runbooks import Runbook
from harness.stack import citus

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.citus,
    pytest.mark.requires("citus", "tools", "guide-schema", "loop-volumes"),
    pytest.mark.target("complete-cluster-loss"),
]

COUNT_SQL = ("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM events), "
             "(SELECT count(*) FROM vectors), (SELECT count(*) FROM event_kinds)")


def counts(dsn: str) -> list[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return list(conn.execute(COUNT_SQL).fetchone())


def distributed_tables(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM citus_tables").fetchone()[0]


def report_lines(out: str, *prefixes: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.startswith(prefixes)]


def redistribute(book: Runbook, rows: list[dict]) -> None:
    """The working procedure: every table distributed again as the backup's export says."""
    first_of: dict[str, str] = {}
    for row in rows:
        table = row["table_name"]
        if row["partmethod"] == "n":
            book.sql(f"W. create_reference_table('{table}')", "SELECT create_reference_table(%s)", (table,),
                     guide=False)
        else:
            anchor = first_of.setdefault(row["colocationid"], table)
            if anchor == table:
                book.sql(f"W. create_distributed_table('{table}', '{row['column_name']}')",
                         "SELECT create_distributed_table(%s, %s, shard_count => %s)",
                         (table, row["column_name"], int(row["shard_count"])), guide=False)
            else:
                book.sql(f"W. create_distributed_table('{table}', colocate_with => '{anchor}')",
                         "SELECT create_distributed_table(%s, %s, colocate_with => %s)",
                         (table, row["column_name"], anchor), guide=False)
        book.sql(f"W. truncate_local_data_after_distributing_table('{table}')",
                 "SELECT truncate_local_data_after_distributing_table(%s)", (table,), guide=False)


def test_citus_backup_restore(scenario_run):
    with scenario_run(load=False) as run:
        book = Runbook(run)
        run.figures["steps"] = book.steps
        dsn = book.dsn
        expected = counts(dsn)
        started = time.monotonic()
        rc, out = run.stack.run_tool("citus/daily-backup.sh")
        assert rc == 0, out
        taken_at = time.monotonic()
        name = next(line.split(": ", 1)[1].strip() for line in out.splitlines() if "Backup created" in line)
        stamp = name.removeprefix("backup_").removesuffix(".tar.gz")
        run.figures["backup"] = {"file": name, "seconds": round(taken_at - started, 1),
                                 "steps": report_lines(out, "AS WRITTEN", "WORKING", "ADDED"),
                                 "counts": expected}
        export = run.stack.backups_dir / f"citus_distribution_{stamp}.csv"
        with export.open() as fh:
            distribution = list(csv.DictReader(fh))
        run.figures["distribution_export"] = distribution
        run.sleep(3)  # writes acknowledged after the backup: what RPO measures

        def lose_everything():
            run.pause_load()
            run.stack.destroy()
            return lambda: None  # the restore below is the repair

        loss = run.nemesis.custom("cluster-loss", "all", lose_everything,
                                  lambda: (not run.stack.containers(), "no container of the stack left"))
        run.phase("redeploy")
        run.stack.redeploy()
        run.figures["redeployed_after_s"] = round(run.now() - loss.time, 1)
        rc, out = run.stack.run_tool("citus/restore.sh", "--yes", f"/backups/{name}")
        run.figures["restore_as_written"] = report_lines(out, "STEP")
        run.figures["after_guide_restore"] = {"counts": counts(dsn), "citus_tables": distributed_tables(dsn),
                                              "placements": citus.placements_per_group(dsn)}
        redistribute(book, distribution)
        restored = counts(dsn)
        run.figures["after_working_procedure"] = {"counts": restored, "citus_tables": distributed_tables(dsn),
                                                  "placements": citus.placements_per_group(dsn)}
        run.figures["backup_age_s"] = round(loss.time - (taken_at - run.run_start), 1)
        run.figures["restored_after_s"] = round(run.now() - loss.time, 1)
        run.nemesis.heal(loss)
        run.resume_load()
        run.wait_for_recovery()

        def restored_distributed(ops) -> dict:
            bad = []
            after = run.figures["after_working_procedure"]
            if restored != expected:  # no locust: only the probe writes, and only into schema pgchaos
                bad.append(f"counts {restored} != backup's {expected}")
            if after["citus_tables"] != len(distribution):
                bad.append(f"{after['citus_tables']} Citus tables after the restore, "
                           f"{len(distribution)} in the backup")
            groups = {g for g in after["placements"] if g > 0}
            if len(groups) < len(run.stack.manifest.worker_groups):
                bad.append(f"shards not on every worker group: {after['placements']}")
            failed = [s for s in book.steps if not s["ok"]]
            if failed:
                bad.append(f"working procedure steps failed: {failed}")
            return {"valid": not bad, "reason": "; ".join(bad)}

        run.add_check("citus-restored-distributed", restored_distributed)
    assert_verdict(run.verdict)
