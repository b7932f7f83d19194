"""The load's own tables: schema `pgchaos`, created at start and dropped at the
end. The load needs nothing of the user's schema; a stack may give its own
DDL (manifest `load.setup_sql`, e.g. tables spread over its workers). On a
Citus stack without its own DDL the harness distributes both tables itself,
co-located and hash-distributed over every worker group (`CITUS_DDL`), so a
Citus cluster someone else built needs no table of ours beforehand."""

from __future__ import annotations

from pathlib import Path

from harness.errors import PgchaosError
from harness.stack.manifest import LOAD_SCHEMA

DEFAULT_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {LOAD_SCHEMA};
CREATE TABLE IF NOT EXISTS {LOAD_SCHEMA}.ledger (
    key bigint PRIMARY KEY,
    writer integer NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {LOAD_SCHEMA}.events (
    id bigint PRIMARY KEY,
    user_id bigint,
    kind text NOT NULL,
    payload jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""

# Both load tables spread over the worker groups (8 shards: every group of a
# small formation holds some), events co-located with ledger; idempotent.
CITUS_DDL = f"""
SELECT create_distributed_table('{LOAD_SCHEMA}.ledger', 'key', shard_count => 8)
WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = '{LOAD_SCHEMA}.ledger'::regclass);
SELECT create_distributed_table('{LOAD_SCHEMA}.events', 'id', colocate_with => '{LOAD_SCHEMA}.ledger')
WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = '{LOAD_SCHEMA}.events'::regclass);
"""


def load_ddl(setup_sql: Path | None = None, citus: bool = False) -> str:
    """The DDL that creates the load's schema: the stack's own, else ours (distributed on Citus)."""
    if setup_sql is not None:
        return setup_sql.read_text()
    return DEFAULT_DDL + (CITUS_DDL if citus else "")


def create_load_schema(dsn: str, setup_sql: Path | None = None, attempts: int = 10,
                       citus: bool = False) -> None:
    """Create the load's schema (idempotent), retried while the leader settles."""
    import time

    import psycopg

    ddl = load_ddl(setup_sql, citus)
    last = ""
    for _ in range(attempts):
        try:
            with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
                conn.execute(ddl)
            return
        except psycopg.Error as exc:
            last = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            time.sleep(1.0)
    raise PgchaosError(f"could not create the load's schema {LOAD_SCHEMA!r}: {last}")


def drop_load_schema(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {LOAD_SCHEMA} CASCADE")
