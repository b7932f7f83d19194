"""Benchmark: the harness's load vs pgbench on the same stack, same run.

    python tests/bench_load.py [--clients 4] [--seconds 15] [--rounds 3] [--sweep 100,200,400]
                               [--workers 0,1,2]

Needs a stack from `pgchaos up` and pgbench on the host (Debian: postgresql-15).
It attaches to the newest stack of PGCHAOS_STATE_DIR (default /var/lib/pgchaos),
so a stack brought up with offset ports and its own state folder (the variables
of tests/offset_stack.py's OFFSET_ENV) is measured when they are exported.

Both drive the same transaction through PgBouncer on 127.0.0.1 (BEGIN; SET
LOCAL statement_timeout; INSERT; SET LOCAL statement_timeout = 0; COMMIT):
in each round pgbench with that script, then locust's WriterUser with no
pacing (statements before COMMIT pipelined, waits on gevent's loop: as the
harness runs it), then the same the way it ran before (no pipeline,
psycopg's own wait through gevent's select.poll emulation); a bare-INSERT pgbench once; then the probe alone
(its achieved period). With --sweep, paced writers at each target rate run
beside the probe: ops/s recorded in the history and the probe's period under
that load (the highest recorded rate with the probe's period within 0.05 s).
With --workers, the same unpaced writers on locust's master/worker mode over
each number of local worker processes (0: one process), as --pgchaos-load-workers
runs them: acknowledged writes/s and the CPU share of all the load's processes.
Prints figures and ratios against pgbench measured in the same run, never
asserts on time. Every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
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
PROBE_PERIOD_LIMIT_S = 0.05


def pgbench(stack: Stack, port: int, script: str, clients: int, seconds: int) -> float:
    user, password = stack.manifest.database.credentials()
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    out = subprocess.run(
        ["pgbench", "-n", "-h", "127.0.0.1", "-p", str(port), "-U", user, "-c", str(clients),
         "-j", "1", "-T", str(seconds), "-f", f.name, stack.database],
        capture_output=True, text=True, env={"PGPASSWORD": password, "PATH": "/usr/bin:/bin"},
        timeout=seconds + 60)
    Path(f.name).unlink()
    match = re.search(r"tps = ([0-9.]+)", out.stdout)
    if not match:
        raise SystemExit(f"pgbench failed: {out.stderr.strip()[-300:]}")
    return float(match.group(1))


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def locust_writes(stack: Stack, clients: int, seconds: int, pipeline: bool = True,
                  probe: bool = False, pacing_s: float = 0.0, gevent_wait: bool = True,
                  workers: int = 0) -> dict[str, float]:
    """Writers (no pacing by default) for `seconds` (after a 3 s ramp, not counted): acknowledged
    writes/s, ops/s recorded (every line of the window), CPU share of the locust process,
    and with `probe` the probe's achieved periods beside them."""
    out = Path(tempfile.mkdtemp(prefix="pgchaos-bench-"))
    run_start = time.monotonic()
    history = HistoryWriter(out / "h-probe.jsonl", run_start=run_start) if probe else None
    os.environ["PGCHAOS_GEVENT_WAIT"] = "1" if gevent_wait else "0"  # read by the locust subprocess
    load = LocustLoad(stack.dsn(), out, run_start, key_base(), users=clients,
                      run_time_s=seconds + 60, pacing_s=pacing_s, user_classes=("WriterUser",),
                      pipeline=pipeline, workers=workers).start()
    try:
        load.wait_running(30)
        time.sleep(3)
        assert load.proc is not None
        pids = [load.proc.pid] + [w.pid for w in load.worker_procs]
        cpu0, t0 = sum(_cpu_s(pid) for pid in pids), time.monotonic()
        if history is not None:
            with Probe(stack.dsn(), history, key_base() + 10**8) as p:
                time.sleep(seconds)
        else:
            time.sleep(seconds)
        cpu1, t1 = sum(_cpu_s(pid) for pid in pids), time.monotonic()
    finally:
        load.stop()
        if history is not None:
            history.close()
    lo, hi = t0 - run_start, t1 - run_start
    ops = [op for path in load.history_paths if path.exists() for op in read_history(path) if lo <= op.time < hi]
    oks = sum(1 for op in ops if op.f == "write" and op.type == "ok")
    figures = {"ok_writes_s": round(oks / (t1 - t0), 1), "recorded_ops_s": round(len(ops) / (t1 - t0), 1),
               "locust_cpu_share": round((cpu1 - cpu0) / (t1 - t0), 2),
               "errors": sum(1 for op in ops if op.type in ("fail", "info"))}
    if history is not None:
        figures.update({f"probe_{k}_period_s": round(s.mean_period_s, 4) for k, s in p.stats.items()})
    shutil.rmtree(out, ignore_errors=True)
    return figures


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
    parser.add_argument("--rounds", type=int, default=3, help="interleaved pgbench/locust rounds")
    parser.add_argument("--workers", default="", metavar="N,...",
                        help="locust worker processes to measure the distributed load with (e.g. 0,1,2)")
    parser.add_argument("--sweep", default="", metavar="OPS_S,...",
                        help="paced writer rates (ops/s) to run beside the probe (e.g. 100,200,400,800)")
    args = parser.parse_args()
    stack = Stack.attach(progress=lambda m: None)
    port = stack.published_port(stack.manifest.pooler.service, stack.manifest.pooler.port)
    print(f"stack {stack.project}, pooler 127.0.0.1:{port}", file=sys.stderr)
    rounds: list[dict[str, float]] = []
    for n in range(args.rounds):
        r = {"pgbench_mirrored_tps": pgbench(stack, port, MIRRORED, args.clients, args.seconds),
             "locust_writer_ops_s": locust_writes(stack, args.clients, args.seconds)["ok_writes_s"],
             "locust_writer_before_ops_s": locust_writes(
                 stack, args.clients, args.seconds, pipeline=False, gevent_wait=False)["ok_writes_s"]}
        r["ratio"] = round(r["locust_writer_ops_s"] / r["pgbench_mirrored_tps"], 2)
        r["ratio_before"] = round(r["locust_writer_before_ops_s"] / r["pgbench_mirrored_tps"], 2)
        rounds.append(r)
        print(f"round {n + 1}: {json.dumps(r)}", file=sys.stderr)

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in rounds), 1)

    figures: dict[str, object] = {} if not rounds else {
        "pgbench_mirrored_tps": median("pgbench_mirrored_tps"),
        "locust_writer_ops_s": median("locust_writer_ops_s"),
        "locust_writer_before_ops_s": median("locust_writer_before_ops_s"),
        "ratio_locust_vs_pgbench_mirrored": round(statistics.median(r["ratio"] for r in rounds), 2),
        "ratio_before_vs_pgbench_mirrored": round(statistics.median(r["ratio_before"] for r in rounds), 2),
        "rounds": rounds,
    }
    if rounds:
        figures["pgbench_bare_insert_tps"] = pgbench(stack, port, BARE, args.clients, args.seconds)
        figures["ratio_locust_vs_pgbench_bare"] = round(
            figures["locust_writer_ops_s"] / figures["pgbench_bare_insert_tps"], 2)  # type: ignore[operator]
    if args.workers:
        distributed = {}
        for n in (int(w) for w in args.workers.split(",")):
            distributed[n] = locust_writes(stack, args.clients, args.seconds, workers=n)
            print(f"workers {n}: {json.dumps(distributed[n])}", file=sys.stderr)
        figures["distributed_writers"] = distributed
    figures["probe_period_s"] = probe_period(stack, 10)
    if args.sweep:
        sweep = {}
        for rate in (int(r) for r in args.sweep.split(",")):
            users = max(2, rate // 25)  # each paced user well below its unpaced rate
            sweep[rate] = {"users": users, **locust_writes(stack, users, args.seconds, probe=True,
                                                           pacing_s=users / rate)}
            print(f"sweep {rate} ops/s: {json.dumps(sweep[rate])}", file=sys.stderr)
        figures["sweep_beside_probe"] = sweep
        within = [f["recorded_ops_s"] for f in sweep.values()
                  if max(f["probe_write_period_s"], f["probe_read_period_s"]) <= PROBE_PERIOD_LIMIT_S]
        figures["max_recorded_ops_s_probe_within_0.05s"] = max(within) if within else None
    import psycopg

    with psycopg.connect(stack.dsn(), autocommit=True) as conn:
        conn.execute("DELETE FROM pgchaos.events WHERE kind = 'bench'")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
