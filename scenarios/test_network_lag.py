"""Network lag through Toxiproxy (the kernel has no netem): latency with
jitter on the client path (PgBouncer -> HAProxy) and on coordinator ->
worker-1, then a throttled replication link with a bulk write so that the
health check flags replication lag per the guide's thresholds (10 MB
warning, 100 MB action) and the ReplicationLagWarning alert pages the
on-call. No lost writes; latency figures reported. Target network-lag
(10 s / RPO 0)."""

import statistics
import threading

import psycopg
import pytest

from conftest import assert_verdict
from harness.history import Op
from harness.stack.steady_state import LAG_WARNING_BYTES, check_replication_lag
from harness.stack.topology import discover

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("client-link", "worker-links", "replication-links"),
    pytest.mark.target("network-lag"),
]

LATENCY_MS, JITTER_MS = 200, 50
BALLAST_ROWS = 250_000  # about 30 MB of WAL


def latencies(ops: list[Op], f: str, start: float, end: float) -> list[float]:
    invoked: dict = {}
    out = []
    for op in ops:
        if op.f != f or not isinstance(op.process, int):
            continue
        if op.type == "invoke":
            invoked[op.process] = op.time
        elif op.type == "ok" and op.process in invoked and start <= op.time <= end:
            out.append(op.time - invoked.pop(op.process))
    return out


def test_network_lag(scenario_run):
    with scenario_run() as run:
        windows = {}
        for link in ("client", "worker-1"):
            start = run.now()
            fault = run.nemesis.inject("latency", link, latency=LATENCY_MS, jitter=JITTER_MS)
            run.sleep(8)
            run.nemesis.heal(fault)
            windows[fault.target] = (start + 1.0, run.now())
            run.sleep(2)

        # replication lag: throttle the leader's replication link, write a ballast
        leader = discover(run.stack).leader
        fault = run.nemesis.inject("bandwidth", "replication", rate=256, stream="downstream")
        run.expect_alerts("ReplicationLagWarning", fault=fault)  # the guide's 10 MB, as a page
        worst = {"bytes": 0, "level": "normal"}

        def ballast() -> None:
            with psycopg.connect(run.stack.dsn(leader), autocommit=True) as conn:
                conn.execute("SET synchronous_commit = local")
                conn.execute("CREATE TABLE IF NOT EXISTS lag_ballast (id int, pad text)")
                conn.execute("INSERT INTO lag_ballast SELECT g, repeat('x', 100) "
                             "FROM generate_series(1, %s) g", (BALLAST_ROWS,))

        writer = threading.Thread(target=ballast, daemon=True)
        writer.start()

        def lag_flagged() -> bool:
            check = check_replication_lag(run.stack, discover(run.stack))
            worst_now = max(check.data.get("lag_bytes", {}).values(), default=0)
            if worst_now > worst["bytes"]:
                worst.update(bytes=worst_now, level=check.data.get("level"))
            return not check.ok

        flagged_after = run.wait_until("health check flags replication lag > 10 MB", lag_flagged,
                                       timeout_s=60, interval_s=0.5)
        writer.join(timeout=120)
        run.wait_for_alert("ReplicationLagWarning", since=fault.time, timeout_s=60)  # lag lasts until paged
        run.nemesis.heal(fault)
        run.wait_until("replication lag back under 10 MB",
                       lambda: check_replication_lag(run.stack, discover(run.stack)).ok, timeout_s=120)
        with psycopg.connect(run.stack.dsn(), autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS lag_ballast")
        run.figures["replication_lag"] = {**worst, "flagged_after_s": round(flagged_after, 1),
                                          "warning_bytes": LAG_WARNING_BYTES}

        def latency_figures(ops: list[Op]) -> dict:
            figures = {}
            baseline = latencies(ops, "write", 0.0, windows["pooler-router"][0] - 1.0)
            for link, (start, end) in windows.items():
                lat = latencies(ops, "write", start, end)
                figures[link] = {"ops": len(lat),
                                 "median_ms": round(1000 * statistics.median(lat), 1) if lat else None}
            figures["baseline_median_ms"] = round(1000 * statistics.median(baseline), 1) if baseline else None
            run.figures["write_latency"] = figures
            client = figures["pooler-router"]["median_ms"]
            ok = client is not None and client >= LATENCY_MS
            return {"valid": ok, "figures": figures,
                    "reason": f"client-path latency not visible in write latency: {figures}"}

        run.add_check("latency-observed", latency_figures)
    assert_verdict(run.verdict)
