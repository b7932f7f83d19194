"""The data a stack needs before scenarios run: the stack's own schema (retried while the
formation settles), the load's tables (on Citus distributed over every worker group once
Patroni has registered them), the guide's sample rows where the stack has the guide's
tables; and the load's tables dropped from an attached stack afterwards."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import PgchaosError

if TYPE_CHECKING:
    from harness.stack.stack import Stack


def prepare(stack: Stack) -> None:
    """The load's own schema, and the guide's sample rows on a stack that has the guide's tables."""
    from harness.load.schema import create_load_schema

    citus = bool(stack.capabilities().get("citus"))
    if stack.manifest.schema_sql:
        run_schema_sql(stack, stack.manifest.dir / stack.manifest.schema_sql)
    elif citus:  # our tables are spread over the worker groups Citus knows: all of them
        wait_for_citus_workers(stack)
    setup = stack.manifest.load_setup_sql
    settling(lambda: create_load_schema(stack.dsn(via="router"),
                                              stack.manifest.dir / setup if setup else None,
                                              citus=citus))
    if "guide-schema" in stack.capabilities():
        settling(lambda: seed(stack))


def settling(step: Callable[[], None], timeout_s: float = 60.0) -> None:
    """Run an idempotent set-up step, again while connections still break or land on a
    read-only member (a router or pooler task that has just come up may drop its first
    server connections, or hold one to a member that is no longer the leader)."""
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            step()
            return
        except (psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction) as exc:
            if time.monotonic() > deadline:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise PgchaosError(f"stack set-up failed for {timeout_s:.0f} s: {first}") from exc
            time.sleep(1.0)


def run_schema_sql(stack: Stack, path: Path, timeout_s: float = 120.0) -> None:
    """The stack's own schema (idempotent), retried while the formation settles
    (Citus: until Patroni has registered every worker group's primary)."""
    import psycopg

    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(stack.dsn(via="router", connect_timeout=3), autocommit=True) as conn:
                if stack.manifest.capabilities().get("citus") and (last := workers_missing(stack, conn)):
                    time.sleep(1.0)
                    continue
                with conn.transaction():
                    conn.execute(path.read_text())
            return
        except psycopg.Error as exc:
            last = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            time.sleep(1.0)
    raise PgchaosError(f"{path.name} could not be applied in {timeout_s:.0f} s: {last}")


def workers_missing(stack: Stack, conn: Any) -> str:
    """'' when every worker group of the formation has an active primary in pg_dist_node."""
    groups = conn.execute("SELECT count(DISTINCT groupid) FROM pg_dist_node "
                          "WHERE noderole = 'primary' AND isactive AND groupid > 0").fetchone()[0]
    want = len(stack.manifest.worker_groups)
    return "" if groups >= want else f"{groups}/{want} worker groups in pg_dist_node"


def wait_for_citus_workers(stack: Stack, timeout_s: float = 120.0) -> None:
    """Until Patroni has registered every worker group's primary (the load's tables are
    distributed over the groups Citus knows when they are created)."""
    import psycopg

    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(stack.dsn(via="router", connect_timeout=3), autocommit=True) as conn:
                if not (last := workers_missing(stack, conn)):
                    return
        except psycopg.Error as exc:
            last = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        time.sleep(1.0)
    raise PgchaosError(f"the Citus worker groups were not all registered in {timeout_s:.0f} s: {last}")


def drop_load_schema(stack: Stack) -> None:
    from harness.load.schema import drop_load_schema

    drop_load_schema(stack.dsn(via="router"))


def seed(stack: Stack) -> None:
    """Load the guide's sample rows once (its DR checks count them)."""
    import psycopg

    sql = (stack.manifest.dir / "sql" / "seed.sql").read_text()
    with psycopg.connect(stack.dsn(), autocommit=True) as conn:
        if conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0:
            with conn.transaction():
                conn.execute(sql)
