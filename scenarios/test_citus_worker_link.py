"""Citus profile — coordinator <-> worker lag, then a partition, through
Toxiproxy on link role `worker-1` (pg-<worker group 1's primary>: the
coordinator's and the other worker's connections to it, and its standby's
replication). First latency with jitter, then the link cut (connections
refused, open ones closed). Recorded per phase: what the coordinator reports
(`citus_check_cluster_node_health()`, `citus_get_active_worker_nodes()`),
what clients see (per-group writers: latency, errors), and the recovery
after each heal (per-group RTO, time until the health check is all ok
again). Group 2's writes must not fail in either phase; no acknowledged
write may be lost. Target citus-worker-link (ours: 30 s / RPO 0)."""

import statistics
import time

import pytest
from citus_support import GroupWriters, per_group, writer_process

from conftest import assert_verdict
from harness.citus_runbooks import wait_for
from harness.history import Op
from harness.stack import citus

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.citus,
    pytest.mark.requires("citus", "worker-links>=1", "worker-groups>=2"),
    pytest.mark.target("citus-worker-link"),
]

LOST, KEPT = 1, 2
LATENCY_MS, JITTER_MS = 100, 20
HOLD_S = 10.0


def coordinator_view(dsn: str) -> dict:
    """The guide's two health queries, timed (each may wait on a connection timeout)."""
    out: dict = {}
    started = time.monotonic()
    try:
        rows = citus.node_health(dsn)
        failing = [f"{r['from']}->{r['to']}={r['ok']}" for r in rows if r["ok"] is not True]
        out["node_health"] = {"failing": failing, "pairs": len(rows)}
    except Exception as exc:
        out["node_health"] = {"error": citus.error_text(exc)}
    out["node_health_s"] = round(time.monotonic() - started, 2)
    try:
        out["active_workers"] = citus.active_workers(dsn)
    except Exception as exc:
        out["active_workers"] = {"error": citus.error_text(exc)}
    return out


def healthy(dsn: str) -> bool:
    rows = citus.node_health(dsn)
    return bool(rows) and all(r["ok"] is True for r in rows)


def client_view(ops: list[Op], start: float, end: float) -> dict:
    """Per group: write latencies (ms) and the distinct errors clients got in [start, end]."""
    out = {}
    for g in (LOST, KEPT):
        process = writer_process(g)
        invoked, lat, errors = {}, [], {}
        for op in ops:
            if op.process != process or op.f != "write":
                continue
            if op.type == "invoke":
                invoked[op.value] = op.time
            elif start <= op.time <= end:
                if op.type == "ok" and op.value in invoked:
                    lat.append(1000 * (op.time - invoked[op.value]))
                elif op.type != "ok":
                    errors[str(op.error)[:160]] = errors.get(str(op.error)[:160], 0) + 1
        out[g] = {"ok": len(lat), "median_ms": round(statistics.median(lat), 1) if lat else None,
                  "max_ms": round(max(lat), 1) if lat else None, "errors": errors}
    return out


def test_citus_worker_link(scenario_run):
    with scenario_run() as run:
        dsn = run.stack.dsn(via="router", connect_timeout=3)
        views, windows, recovery = {"before": coordinator_view(dsn)}, {}, {}
        with GroupWriters(run, [LOST, KEPT]):
            run.sleep(3)
            for name, fault_name, params in (("latency", "latency", {"latency": LATENCY_MS, "jitter": JITTER_MS}),
                                             ("cut", "link-down", {})):
                start = run.now()
                fault = run.nemesis.inject(fault_name, "worker-1", **params)
                if name == "cut":  # the coordinator's side can no longer reach the group's primary
                    run.expect_alerts("WorkerUnreachable", fault=fault)
                run.sleep(HOLD_S / 2)
                views[name] = coordinator_view(dsn)
                run.sleep(max(0.0, HOLD_S - (run.now() - start)))
                if name == "cut":  # a cut lasts until someone is paged (bounded)
                    run.wait_for_alert("WorkerUnreachable", since=fault.time, timeout_s=15)
                run.nemesis.heal(fault)
                healed = run.now()
                windows[name] = (start, healed, fault.time)
                ok, _ = wait_for("citus_check_cluster_node_health all ok", lambda: healthy(dsn),
                                 timeout_s=90, interval_s=0.5)
                recovery[name] = {"health_all_ok_after_heal_s": round(run.now() - healed, 2) if ok else None}
                views[f"after_{name}"] = coordinator_view(dsn)
                run.wait_for_recovery(timeout_s=90)
                run.sleep(2)
        run.figures.update({"link": fault.target, "coordinator_view": views, "recovery": recovery,
                            "latency_ms": LATENCY_MS, "jitter_ms": JITTER_MS, "hold_s": HOLD_S})

        def worker_link(ops: list[Op]) -> dict:
            bad = []
            seen = {}
            for name, (start, end, _) in windows.items():
                seen[name] = client_view(ops, start + 0.5, end)
                groups = per_group(ops, [LOST, KEPT], start + 0.5, end)
                seen[name]["per_group_writes"] = {g: groups[g]["writes_in_window"] for g in groups}
                kept = groups[KEPT]["writes_in_window"]
                if kept["fail"] + kept["info"]:
                    bad.append(f"{name}: writes to group {KEPT}'s shards failed ({kept})")
            groups = per_group(ops, [LOST, KEPT], 0.0, run.now())
            seen["rto_write_s_per_group"] = {g: groups[g]["rto_write_s"] for g in groups}
            seen["lost_per_group"] = {g: groups[g]["lost"] for g in groups}
            run.figures["client_view"] = seen
            if not views["cut"]["node_health"].get("failing") and "error" not in views["cut"]["node_health"]:
                bad.append("citus_check_cluster_node_health reported nothing wrong during the cut")
            if seen["cut"][LOST]["ok"] and not seen["cut"][LOST]["errors"]:
                bad.append("group 1's writes never failed during the cut: it did not bite")
            if None in [r["health_all_ok_after_heal_s"] for r in recovery.values()]:
                bad.append(f"the node health check did not return to all ok: {recovery}")
            for g, lost in seen["lost_per_group"].items():
                if lost:
                    bad.append(f"group {g}: {lost} acknowledged writes lost")
            return {"valid": not bad, "reason": "; ".join(bad)}

        run.add_check("citus-worker-link", worker_link)
    assert_verdict(run.verdict)
