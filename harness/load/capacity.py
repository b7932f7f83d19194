"""Capacity: the declared number of clients, all connected at once through the
pooler, each running one short transaction while the others hold their
connections. Every attempt is recorded (process CAPACITY_BASE + i, f
"connect"): invoke, then ok or fail with the server's words, so a checker
can judge from the history alone."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from harness.history import HistoryWriter, Op, pair_invocations
from harness.load.client import describe

CAPACITY_BASE = 5000
DEFAULT_CLIENTS = 200  # the guide's PgBouncer max_client_conn
DEFAULT_WAIT_BOUND_S = 5.0


def drive_clients(dsn: str, history: HistoryWriter, clients: int = DEFAULT_CLIENTS, hold_s: float = 3.0,
                  work_sql: str = "SELECT pg_sleep(0.05)", timeout_s: float = 60.0) -> None:
    """Open `clients` connections at once, run `work_sql` on each, hold them `hold_s`, close."""
    barrier = threading.Barrier(clients, timeout=timeout_s)
    done = threading.Event()

    def one(i: int) -> None:
        import psycopg

        process = CAPACITY_BASE + i
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        history.append(process, "invoke", "connect", i)
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("SET statement_timeout = 15000")
                conn.execute(work_sql)
                history.append(process, "ok", "connect", i)
                done.wait(hold_s)  # hold the client connection while the others arrive
        except Exception as exc:
            history.append(process, "fail", "connect", i, error=describe(exc))

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout_s + hold_s
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    done.set()


def connected_clients(stack: Any) -> int:
    """Client connections the pooler holds now, not counting the one that asks."""
    import psycopg

    pooler = stack.manifest.pooler
    with psycopg.connect(stack.dsn(dbname=pooler.admin_db), autocommit=True) as conn:
        rows = conn.execute("SHOW CLIENTS").fetchall()
    return max(0, len(rows) - 1)


def check_capacity(ops: list[Op], clients: int = DEFAULT_CLIENTS,
                   wait_bound_s: float = DEFAULT_WAIT_BOUND_S) -> dict[str, Any]:
    """Every declared client served (ok) within the wait bound; refusals named."""
    invoked = pair_invocations(ops)
    served, waits, refused = 0, [], []
    for i, op in enumerate(ops):
        if op.f != "connect" or op.type == "invoke" or not isinstance(op.process, int) \
                or op.process < CAPACITY_BASE:
            continue
        start = ops[invoked[i]].time if invoked[i] is not None else op.time
        if op.type == "ok":
            served += 1
            waits.append(op.time - start)
        else:
            refused.append(op.error or "unknown error")
    waits.sort()
    worst = waits[-1] if waits else None
    p99 = waits[min(len(waits) - 1, int(0.99 * len(waits)))] if waits else None
    reasons = []
    if served < clients:
        first = refused[0] if refused else "no answer"
        reasons.append(f"{clients - served} of {clients} declared clients not served (first: {first})")
    if worst is not None and worst > wait_bound_s:
        reasons.append(f"slowest client waited {worst:.2f} s > {wait_bound_s:.1f} s")
    return {"valid": not reasons, "clients": clients, "served": served, "refused": len(refused),
            "wait_p99_s": p99, "wait_max_s": worst, "wait_bound_s": wait_bound_s,
            "reason": "; ".join(reasons) or None}
