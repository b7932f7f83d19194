"""Backups and disaster recovery, running the guide's procedures as scripts
(compose/scripts/backup/) in a toolbox container on the stack network:
- the daily backup (dump + metadata export + md5) and the monthly DR test
  (restore into dr_test, counts, vector search `<=>`, drop);
- complete cluster loss: every container and volume destroyed, a new
  cluster deployed, the latest backup restored, counts verified;
  RTO measured vs 2 h, RPO = age of the backup vs 24 h;
- data corruption: a shard's pages overwritten on disk, detected by the
  verification query (checksum failure), restored from the backup; RTO vs 4 h.

The guide's restore begins with "stop application traffic": in the two
disasters, traffic (the probe) stops at the fault and resumes once the restore
is verified, so RTO runs from the fault to traffic succeeding again, and the
writes acknowledged after the backup are what RPO counts as lost.
"""

from __future__ import annotations

import subprocess
import time

import psycopg
import pytest

from conftest import assert_verdict

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("tools", "guide-schema", "loop-volumes"),
]

COUNT_SQL = ("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM events), "
             "(SELECT count(*) FROM vectors)")


def counts(dsn: str) -> tuple[int, int, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return tuple(conn.execute(COUNT_SQL).fetchone())


def take_backup(run) -> tuple[str, float, tuple[int, int, int]]:
    """Run the daily backup; returns the backup path inside the toolbox, its time, the counts it holds."""
    before = counts(run.stack.dsn())
    taken_at = time.monotonic()
    rc, out = run.stack.run_tool("backup/daily-backup.sh")
    assert rc == 0, out
    name = next(line.split(": ", 1)[1].strip() for line in out.splitlines() if "Backup created" in line)
    run.figures["backup"] = {"file": name, "seconds": round(time.monotonic() - taken_at, 1),
                             "size_bytes": (run.stack.backups_dir / name).stat().st_size}
    run.phase("backup", file=name)
    return f"/backups/{name}", taken_at, before


def restore_latest(run, fault, taken_at: float, expected: tuple[int, int, int]) -> tuple[int, int, int]:
    """The guide's restore of the latest backup, then traffic resumes; records the figures."""
    run.phase("restore")
    backups = sorted(run.stack.backups_dir.glob("backup_*.sql.gz"))
    rc, out = run.stack.run_tool("backup/restore.sh", "--yes", f"/backups/{backups[-1].name}")
    assert rc == 0, out
    restored = counts(run.stack.dsn())
    run.figures["counts"] = {"backup": expected, "restored": restored}
    run.figures["backup_age_s"] = round(fault.time - (taken_at - run.run_start), 1)
    run.figures["restored_after_s"] = round(run.now() - fault.time, 1)
    run.history.append("nemesis", "info", "heal", {"target": fault.value["target"], "fault": fault.index})
    run.resume_load()
    run.wait_for_recovery()
    return restored


def observe(run, fault, seen: bool, evidence: str) -> None:
    """The fault-effect observation of a disaster recorded by hand (history contract)."""
    run.history.append("observer", "ok" if seen else "fail", "fault-effect",
                       {"fault": fault.index, "target": fault.value["target"], "evidence": evidence[:300]},
                       node=fault.value["target"])


def test_daily_backup_and_dr_test(scenario_run):
    with scenario_run(load=False) as run:
        path, _, expected = take_backup(run)
        rc, out = run.stack.run_tool("backup/verify-backup.sh", path)
        assert rc == 0 and "Backup verified" in out, out
        started = time.monotonic()
        rc, out = run.stack.run_tool("backup/restore.sh", "--yes", "--local", path, "dr_test")
        assert rc == 0, out
        run.figures["dr_restore_s"] = round(time.monotonic() - started, 1)
        dr_dsn = run.stack.dsn(dbname="dr_test", via="router")
        restored = counts(dr_dsn)
        run.figures["dr_counts"] = {"expected": expected, "restored": restored}
        with psycopg.connect(dr_dsn, autocommit=True) as conn:
            nearest = conn.execute(
                "SELECT id FROM vectors ORDER BY embedding <=> '[0.1, 0.2, 0.3]' LIMIT 5").fetchall()
        with psycopg.connect(run.stack.dsn(dbname="postgres", via="router"), autocommit=True) as conn:
            conn.execute("DROP DATABASE dr_test WITH (FORCE)")
        run.add_check("dr-test", lambda ops: dr_test_outcome(expected, restored, len(nearest)))
    assert_verdict(run.verdict)
    assert run.verdict["verdict"] == "pass" and "dr-test" in run.verdict["judged"]["checks"], run.verdict


def dr_test_outcome(expected: tuple[int, int, int], restored: tuple[int, int, int],
                    nearest: int) -> dict:
    """The guide's DR test passes when the restored copy holds what the backup held
    (events only grow: the load writes on) and the vector search answers."""
    reasons = []
    if restored[0] != expected[0] or restored[2] != expected[2] or restored[1] < expected[1]:
        reasons.append(f"restored counts (users, events, vectors) {restored} differ from the backup's {expected}")
    if nearest != 5:
        reasons.append(f"vector search on the restored copy returned {nearest} of 5 rows")
    return {"valid": not reasons, "expected": expected, "restored": restored,
            "reason": "; ".join(reasons) or None}


@pytest.mark.exclusive  # a restore: it stalls another stack's commits (certify --stacks runs it alone)
@pytest.mark.target("complete-cluster-loss")
def test_complete_cluster_loss(scenario_run):
    with scenario_run(load=False) as run:
        _, taken_at, expected = take_backup(run)
        run.sleep(3)  # writes acknowledged after the backup: these are what RPO measures
        loss = run.history.append("nemesis", "info", "cluster-loss", {"target": "all"})
        run.pause_load()
        run.stack.destroy()
        left = sorted(run.stack.containers())
        observe(run, loss, not left, f"containers of the stack left: {left or 'none'}; data volumes removed")
        run.phase("redeploy")
        run.stack.redeploy()
        restored = restore_latest(run, loss, taken_at, expected)
        assert restored[0] == expected[0] and restored[2] == expected[2], run.figures["counts"]
    assert_verdict(run.verdict)


@pytest.mark.exclusive  # a restore: it stalls another stack's commits (certify --stacks runs it alone)
@pytest.mark.target("data-corruption")
def test_data_corruption(scenario_run):
    with scenario_run(load=False) as run:
        _, taken_at, expected = take_backup(run)
        run.sleep(2)
        worker = "worker-1"
        with psycopg.connect(run.stack.dsn(worker), autocommit=True) as conn:
            relpath = conn.execute("SELECT pg_relation_filepath('users_shard')").fetchone()[0]
            conn.execute("CHECKPOINT")
        datafile = run.stack.data_mount(worker) / "pg" / relpath
        fault = run.history.append("nemesis", "info", "corruption",
                                           {"target": worker, "file": relpath})
        run.pause_load()
        run.nemesis.owned(worker).stop(timeout=10)  # clean shutdown, then garbage over the pages
        subprocess.run(["dd", "if=/dev/urandom", f"of={datafile}", "bs=8192", "count=4", "seek=1",
                        "conv=notrunc"], check=True, capture_output=True)
        run.nemesis.owned(worker).start()
        run.wait_until(f"{worker} back up",
                       lambda: psycopg.connect(run.stack.dsn(worker, connect_timeout=1)).close() is None,
                       timeout_s=60)
        detected = None
        try:
            counts(run.stack.dsn())
        except psycopg.Error as exc:
            detected = str(exc).strip().splitlines()[0]
        run.figures["detected"] = detected
        observe(run, fault, detected is not None, f"verification query: {detected or 'no error'}")
        assert detected is not None, "the verification query did not notice the corrupted shard"
        run.figures["detected_after_s"] = round(run.now() - fault.time, 1)
        restored = restore_latest(run, fault, taken_at, expected)
        assert restored[0] == expected[0], run.figures["counts"]
    assert_verdict(run.verdict)
