"""The reference stack, live: steady state, the data path on 127.0.0.1,
patronictl inside, the guide's schema. (A second stack beside the session's, up and down
leaving nothing: tests/test_cleanup_safety.py::test_lookalike_containers_are_never_touched.)"""

from __future__ import annotations

import psycopg
import pytest
import requests

from harness.stack import discover, steady_state

pytestmark = pytest.mark.docker

GUIDE_CHECKS = {"services", "patroni_leader", "replicas_streaming", "sync_standbys", "replication_lag",
                "router_health", "pgbouncer_pools", "workers", "disk_space", "slow_queries",
                "idle_in_transaction", "router_write"}
COORDINATORS = ("coordinator-1", "coordinator-2", "coordinator-3")
BANK_TABLES = {"bank_accounts", "bank_entries", "bank_orders", "bank_order_lines"}


def test_steady_state_is_the_daily_health_check(pgchaos_stack):
    state = steady_state(pgchaos_stack)
    assert {c.name for c in state.checks} == GUIDE_CHECKS
    assert state.healthy, state.summary()
    doc = state.as_dict()
    assert doc["leader"] in COORDINATORS
    assert len(doc["replicas"]) == 2 and all(r["state"] == "streaming" for r in doc["replicas"])
    assert doc["healthy"] is True
    sync = next(c for c in state.checks if c.name == "sync_standbys")
    assert sync.data["mode"] is True and len(sync.data["sync_standbys"]) == 1, sync.detail  # synchronous_mode


def test_write_and_read_through_pgbouncer_on_loopback(pgchaos_stack):
    dsn = pgchaos_stack.dsn()
    assert "host=127.0.0.1" in dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgchaos.ledger (key, writer) VALUES (-1, 0) ON CONFLICT DO NOTHING")
        assert conn.execute("SELECT key FROM pgchaos.ledger WHERE key = -1").fetchone() == (-1,)
        # distributed tables reach both workers through postgres_fdw
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 1000
        per_worker = conn.execute(
            "SELECT tableoid::regclass::text, count(*) FROM users GROUP BY 1 ORDER BY 1").fetchall()
        assert [name for name, _ in per_worker] == ["users_w1", "users_w2"]
        assert all(n > 0 for _, n in per_worker)
        nearest = conn.execute(
            "SELECT id FROM vectors ORDER BY embedding <=> '[0.1, 0.2, 0.3]' LIMIT 5").fetchall()
        assert len(nearest) == 5


def test_the_load_schema_is_ours_and_spread_over_the_workers(pgchaos_stack):
    """The load writes only into schema pgchaos; its events reach both workers."""
    with psycopg.connect(pgchaos_stack.dsn(), autocommit=True) as conn:
        tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'pgchaos' "
                              "ORDER BY 1").fetchall()
        parts = conn.execute("SELECT inhrelid::regclass::text FROM pg_inherits "
                             "WHERE inhparent = 'pgchaos.events'::regclass ORDER BY 1").fetchall()
    # events and ledger are the load's; phase_probe the recovery-timeline recorder's (once a fault
    # ran); bank_* the bank workload's (once a scenario ran transfers): every one of them ours
    assert [t for (t,) in tables if t != "phase_probe" and not t.startswith("bank_")] == ["events", "ledger"]
    assert {t for (t,) in tables if t.startswith("bank_")} <= BANK_TABLES
    assert [p for (p,) in parts] == ["pgchaos.events_w1", "pgchaos.events_w2"]


def test_patronictl_list_inside(pgchaos_stack):
    out = pgchaos_stack.patronictl_list()
    assert out.count("Leader") == 1, out
    assert sum(out.count(name) for name in COORDINATORS) == 3, out


def test_router_health_and_stats_pages(pgchaos_stack):
    health = pgchaos_stack.endpoint("haproxy", 8008)
    assert requests.get(f"http://{health}/health", timeout=3).status_code == 200
    stats = requests.get(f"http://{pgchaos_stack.endpoint('haproxy', 8404)}/stats;csv", timeout=3).text
    assert "primary,coordinator-1" in stats
    leader = discover(pgchaos_stack).leader
    up_line = next(line for line in stats.splitlines() if line.startswith(f"primary,{leader},"))
    assert ",UP," in up_line


def test_prometheus_scrapes_the_stack(pgchaos_stack):
    prometheus = pgchaos_stack.endpoint("prometheus", 9090)
    targets = requests.get(f"http://{prometheus}/api/v1/targets", timeout=3).json()
    jobs = {t["labels"]["job"] for t in targets["data"]["activeTargets"]}
    assert {"patroni", "haproxy", "postgres"} <= jobs


def test_every_published_port_is_loopback_only(pgchaos_stack):
    for service, container in pgchaos_stack.containers().items():
        container.reload()
        for bindings in (container.attrs["NetworkSettings"]["Ports"] or {}).values():
            for binding in bindings or []:
                assert binding["HostIp"] == "127.0.0.1", (service, binding)
