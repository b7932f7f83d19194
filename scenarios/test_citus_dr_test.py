"""Citus profile — the guide's monthly disaster recovery test (Monthly
Operations, 4): restore the latest backup into a `dr_test` database, check the
counts of users, events and vectors, run the vector search (`<=>`), drop
`dr_test`. Each step runs as written first (through PgBouncer on 6432, the
guide's restore script with `dr_test` as its target) and what it did is
recorded; where it fails, the working equivalent runs next, labelled
`working procedure`, and both are in the figures (`steps`,
`guide_steps_failed`).

The backup is the daily backup of this profile (compose/scripts/citus/
daily-backup.sh: a pg_dumpall). Restored as written into dr_test, its
`\\connect distributed_postgres_cluster` sends it into the production
database instead (where every table exists and every row is a duplicate
key); the production counts before and after are compared. The working
equivalent restores only the application database's part of the dump (no
`\\connect`) with the same restore script. The verdict: dr_test's counts
equal the backup's, the vector search returns 5 rows, production is
unchanged, dr_test is gone at the end. No fault and no target row: the probe
runs throughout and must not lose a write."""

from __future__ import annotations

import gzip

import psycopg
import pytest

from conftest import assert_verdict
from harness.citus_runbooks import Runbook, database_section
from harness.history import Op

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.citus,
    pytest.mark.requires("citus", "tools", "guide-schema", "pooler"),
]

DR_DB = "dr_test"
COUNT_SQL = ("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM events), "
             "(SELECT count(*) FROM vectors), (SELECT count(*) FROM event_kinds)")
GUIDE_COUNTS = "SELECT count(*) FROM users; SELECT count(*) FROM events; SELECT count(*) FROM vectors;"
GUIDE_SEARCH = "SELECT * FROM vectors ORDER BY embedding <=> ARRAY[0.1, 0.2, 0.3] LIMIT 5"
WORKING_SEARCH = "SELECT id FROM vectors ORDER BY embedding <=> '[0.1, 0.2, 0.3]'::vector LIMIT 5"


def counts(dsn: str) -> list[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return list(conn.execute(COUNT_SQL).fetchone())


def has_table(dsn: str, table: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


def step_lines(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.startswith("STEP")]


def test_citus_monthly_dr_test(scenario_run):
    with scenario_run(load=False) as run:
        stack = run.stack
        book = Runbook(run)
        run.figures["steps"] = book.steps
        user = stack.manifest.database.credentials()[0]
        pooler_no_db = stack.dsn(dbname=user, connect_timeout=5)  # psql without -d: the user's name
        pooler_dr = stack.dsn(dbname=DR_DB, connect_timeout=5)
        router_dr = stack.dsn(dbname=DR_DB, via="router", connect_timeout=5)
        router_admin = stack.dsn(dbname="postgres", via="router", connect_timeout=5)
        production = book.dsn

        rc, out = stack.run_tool("citus/daily-backup.sh")
        assert rc == 0, out
        name = next(line.split(": ", 1)[1].strip() for line in out.splitlines() if "Backup created" in line)
        expected = counts(production)  # the guide's tables: only the probe writes, into schema pgchaos
        run.figures["backup"] = {"file": name, "counts": expected}

        # 1. Create test database -- as written, through PgBouncer
        book.sql("1. CREATE DATABASE dr_test (through PgBouncer, no -d)", f"CREATE DATABASE {DR_DB}",
                 dsn=pooler_no_db)

        # 2. Restore latest backup -- as written: the guide's restore script, target dr_test
        before = counts(production)
        rc, out = stack.run_tool("citus/restore.sh", "--yes", f"/backups/{name}", DR_DB)
        after = counts(production)
        restored_here = has_table(router_dr, "public.users")
        as_written = {"script_steps": step_lines(out), "production_counts": {"before": before, "after": after},
                      "dr_test_has_users": restored_here}
        book.note(f"2. restore.sh {name} {DR_DB}", guide=True, ok=restored_here,
                  error=None if restored_here else (
                      "the backup is a pg_dumpall: its `\\connect distributed_postgres_cluster` replays it into "
                      f"the production database, not {DR_DB} ({DR_DB} has no table users; script: "
                      f"{'; '.join(step_lines(out))})"),
                  **as_written)
        run.figures["restore_as_written"] = as_written

        # 2 (working): the application database's part of the dump only, same restore script
        section = database_section(gzip.decompress((stack.backups_dir / name).read_bytes()).decode(),
                                   stack.database)
        assert section, f"{name} has no part for database {stack.database}"
        part = name.replace("backup_", "dr_test_part_").replace(".tar.gz", ".sql.gz")
        (stack.backups_dir / part).write_bytes(gzip.compress(section.encode()))
        rc, out = stack.run_tool("citus/restore.sh", "--yes", f"/backups/{part}", DR_DB)
        book.note(f"2W. restore.sh of the dump's {stack.database} part (no \\connect) into {DR_DB}",
                  ok=rc == 0 and has_table(router_dr, "public.users"), error=None if rc == 0 else out[-300:],
                  script_steps=step_lines(out), file=part)

        # 3. Verify data integrity -- as written through PgBouncer, then through HAProxy
        book.sql("3. counts in dr_test (through PgBouncer)", GUIDE_COUNTS, dsn=pooler_dr)
        book.sql("3W. counts in dr_test (through HAProxy)", COUNT_SQL, guide=False, dsn=router_dr)
        restored = counts(router_dr)
        # 4. Test vector search -- as written through PgBouncer; the query itself through HAProxy; working form
        book.sql("4. vector search in dr_test (through PgBouncer)", GUIDE_SEARCH, dsn=pooler_dr)
        book.sql("4b. the guide's vector search in dr_test, through HAProxy (route changed only)", GUIDE_SEARCH,
                 dsn=router_dr)
        search = book.sql("4W. vector search with a vector literal (through HAProxy)", WORKING_SEARCH,
                          guide=False, dsn=router_dr)
        # 5. Cleanup -- as written through PgBouncer, then through HAProxy
        book.sql("5. DROP DATABASE dr_test (through PgBouncer, no -d)", f"DROP DATABASE {DR_DB}", dsn=pooler_no_db)
        drop = book.sql("5b. the guide's DROP DATABASE dr_test, through HAProxy (route changed only)",
                        f"DROP DATABASE {DR_DB}", dsn=router_admin)
        if not drop["ok"]:
            book.sql("5W. DROP DATABASE dr_test WITH (FORCE)", f"DROP DATABASE {DR_DB} WITH (FORCE)", guide=False,
                     dsn=router_admin)
        with psycopg.connect(router_admin, autocommit=True) as conn:
            gone = conn.execute("SELECT count(*) = 0 FROM pg_database WHERE datname = %s", (DR_DB,)).fetchone()[0]
        (stack.backups_dir / part).unlink(missing_ok=True)
        run.figures["dr_counts"] = {"backup": expected, "restored": restored}
        run.figures["guide_steps_failed"] = book.failed_guide_steps()

        def dr_test(ops: list[Op]) -> dict:
            bad = []
            if restored != expected:
                bad.append(f"dr_test counts {restored} != the backup's {expected}")
            if not search["ok"] or len(search.get("result") or []) != 5:
                bad.append(f"vector search in dr_test: {search.get('error') or search.get('result')}")
            if after != before:
                bad.append(f"the guide's restore into dr_test changed production: {before} -> {after}")
            if not gone:
                bad.append("dr_test is still there after the clean-up")
            return {"valid": not bad, "reason": "; ".join(bad)}

        run.add_check("citus-monthly-dr-test", dr_test)
    assert_verdict(run.verdict)
