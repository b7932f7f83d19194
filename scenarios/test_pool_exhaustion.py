"""Connection pool exhaustion (the guide's troubleshooting section): more
concurrent transactions than PgBouncer's pool (default_pool_size 20) hold
server connections; `SHOW POOLS` must show waiting clients, reported as the
guide does; service returns when the flood ends. Target pool-exhaustion
(30 s / RPO 0)."""

import threading

import psycopg
import pytest

from conftest import assert_verdict

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("pooler"),
    pytest.mark.target("pool-exhaustion"),
    pytest.mark.alerts("PgBouncerClientsWaiting"),  # the guide's SHOW CLIENTS, as a page
    pytest.mark.exclusive,  # a flood of clients (certify --stacks runs it while no other stack runs one)
]

FLOOD_CLIENTS = 40  # twice the pool
HOLD_S = 4.0


def pool_status(dsn_admin: str, database: str) -> dict:
    with psycopg.connect(dsn_admin, autocommit=True) as conn:
        cur = conn.execute("SHOW POOLS")
        cols = [d.name for d in cur.description]
        pools = [dict(zip(cols, r, strict=False)) for r in cur.fetchall()]
        clients = len(conn.execute("SHOW CLIENTS").fetchall())
    app = next(p for p in pools if p["database"] == database)
    return {"cl_active": app["cl_active"], "cl_waiting": app["cl_waiting"],
            "sv_active": app["sv_active"], "maxwait_s": app["maxwait"], "clients": clients}


def test_pool_exhaustion(scenario_run):
    with scenario_run() as run:
        stop = threading.Event()

        def hold(dsn: str) -> None:  # one bounded client: at most 2 transactions of HOLD_S
            for _ in range(2):
                if stop.is_set():
                    return
                try:
                    with psycopg.connect(dsn, autocommit=True) as conn:
                        conn.execute("SELECT pg_sleep(%s)", (HOLD_S,))
                except psycopg.Error:
                    return

        pooler = run.stack.manifest.pooler  # the role, as the manifest names its service
        exhaustion = run.history.append("nemesis", "info", "pool-exhaustion",
                                        {"target": pooler.service, "clients": FLOOD_CLIENTS})
        flood = [threading.Thread(target=hold, args=(run.stack.dsn(connect_timeout=5),), daemon=True)
                 for _ in range(FLOOD_CLIENTS)]
        for t in flood:
            t.start()
        run.sleep(2)
        admin = run.stack.dsn(dbname=pooler.admin_db)
        during = pool_status(admin, run.stack.database)
        run.figures["pools_during"] = during
        waiting = during.get("cl_waiting", 0) if isinstance(during, dict) else 0
        run.history.append("observer", "ok" if waiting > 0 else "fail", "fault-effect",
                           {"fault": exhaustion.index, "target": pooler.service,
                            "evidence": f"SHOW POOLS during the flood: {during}"[:300]}, node=pooler.service)
        stop.set()
        for t in flood:
            t.join(timeout=30)
        run.history.append("nemesis", "info", "heal", {"target": pooler.service})
        run.sleep(3)
        run.figures["pools_after"] = pool_status(admin, run.stack.database)
        run.add_check("waiting-clients-seen", lambda ops: {
            "valid": during["cl_waiting"] > 0,
            "reason": f"SHOW POOLS showed no waiting client under {FLOOD_CLIENTS} clients: {during}"})
    assert_verdict(run.verdict)
