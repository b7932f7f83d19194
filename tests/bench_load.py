"""Benchmark: the harness's load vs pgbench on the same stack, same run.

    python tests/bench_load.py [--clients 4] [--seconds 15]

Needs a stack from `pgchaos up` and pgbench on the host (Debian: postgresql-15).
Both drive the same transaction through PgBouncer on 127.0.0.1 (BEGIN; SET
LOCAL statement_timeout; INSERT; SET LOCAL statement_timeout = 0; COMMIT),
pgbench first with that script and then with a bare INSERT, then locust's
WriterUser with no pacing; then the probe alone (its achieved period).
Prints ops/s and ratios. Every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from harness.history import HistoryWriter, read_history
from harness.load.client import key_base
from harness.load.locust_runner import LocustLoad
from harness.load.probe import Probe
from harness.stack import Stack

MIRRORED = """\\set id random(1, 1000000000000)
BEGIN;
SET LOCAL statement_timeout = 3000;
INSERT INTO pgchaos.events (id, user_id, kind) VALUES (-:id - :client_id * 1000000000000, 0, 'bench');
SET LOCAL statement_timeout = 0;
COMMIT;
"""
BARE = """\\set id random(1, 1000000000000)
INSERT INTO pgchaos.events (id, user_id, kind) VALUES (-:id - :client_id * 1000000000000, 0, 'bench');
"""


def pgbench(stack: Stack, port: int, script: str, clients: int, seconds: int) -> float:
    user, password = stack.manifest.database.credentials()
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    out = subprocess.run(
        ["pgbench", "-n", "-h", "127.0.0.1", "-p", str(port), "-U", user, "-c", str(clients),
         "-j", "1", "-T", str(seconds), "-f", f.name, stack.database],
        capture_output=True, text=True, env={"PGPASSWORD": password, "PATH": "/usr/bin:/bin"})
    Path(f.name).unlink()
    match = re.search(r"tps = ([0-9.]+)", out.stdout)
    if not match:
        raise SystemExit(f"pgbench failed: {out.stderr.strip()[-300:]}")
    return float(match.group(1))


def locust_writes(stack: Stack, clients: int, seconds: int) -> float:
    out = Path(tempfile.mkdtemp(prefix="pgchaos-bench-"))
    load = LocustLoad(stack.dsn(), out, time.monotonic(), key_base(), users=clients,
                      run_time_s=seconds + 30, pacing_s=0.0, user_classes=("WriterUser",)).start()
    time.sleep(seconds + 2)
    load.stop()
    ops = read_history(load.history_path)
    oks = [op.time for op in ops if op.f == "write" and op.type == "ok"]
    shutil.rmtree(out, ignore_errors=True)
    return (len(oks) - 1) / (oks[-1] - oks[0]) if len(oks) > 1 else 0.0


def probe_period(stack: Stack, seconds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        history = HistoryWriter(Path(tmp) / "h.jsonl", run_start=time.monotonic())
        with Probe(stack.dsn(), history, key_base()) as probe:
            time.sleep(seconds)
        history.close()
    return {kind: round(s.mean_period_s, 4) for kind, s in probe.stats.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    stack = Stack.attach(progress=lambda m: None)
    port = stack.published_port(stack.manifest.pooler.service, stack.manifest.pooler.port)
    figures = {
        "pgbench_mirrored_tps": pgbench(stack, port, MIRRORED, args.clients, args.seconds),
        "pgbench_bare_insert_tps": pgbench(stack, port, BARE, args.clients, args.seconds),
        "locust_writer_ops_s": locust_writes(stack, args.clients, args.seconds),
        "probe_period_s": probe_period(stack, 10),
    }
    figures["ratio_locust_vs_pgbench_mirrored"] = round(
        figures["locust_writer_ops_s"] / figures["pgbench_mirrored_tps"], 2)
    figures["ratio_locust_vs_pgbench_bare"] = round(
        figures["locust_writer_ops_s"] / figures["pgbench_bare_insert_tps"], 2)
    import psycopg

    with psycopg.connect(stack.dsn(), autocommit=True) as conn:
        conn.execute("DELETE FROM pgchaos.events WHERE kind = 'bench'")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
