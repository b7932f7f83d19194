"""Keys by the worker that holds them — on the reference profile the coordinator's
`events` is hash-partitioned over the workers through postgres_fdw (worker-1 holds
remainder 0, worker-2 remainder 1); on a Citus stack, pgchaos.events's shards on the
worker's group — and the wait until every pooled coordinator backend reaches a worker
that came back."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

from harness.errors import PgchaosError
from harness.stack import citus

READ_TIMEOUT_MS = 3000  # the load's own statement timeout
POOL_SIZE = 20  # the reference pooler's default_pool_size: the coordinator backends it keeps


CITUS_TABLE = "pgchaos.events"  # the Citus scenarios' own distributed table


def keys_on(dsn: str, worker: str, first: int, count: int, citus_group: int | None = None) -> list[int]:
    """`count` keys from `first` on that the coordinator places on `worker` (events; on a
    Citus stack the shards of `citus_group`, the worker's group)."""
    if citus_group is not None:
        return citus.keys_in_group(dsn, CITUS_TABLE, citus_group, first, count)
    remainder_zero = worker == "worker-1"
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT k FROM generate_series(%s::bigint, %s::bigint) k "
            "WHERE satisfies_hash_partition('events'::regclass, 2, 0, k) = %s LIMIT %s",
            (first, first + 4 * count, remainder_zero, count)).fetchall()
    return [k for (k,) in rows]


def _read(dsn: str, key: int, table: str = "events") -> str | None:
    """None when the read succeeded, else its error."""
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            conn.execute(f"SET LOCAL statement_timeout = {READ_TIMEOUT_MS}")
            conn.execute(f"SELECT count(*) FROM {table} WHERE id = %s", (key,)).fetchone()
        return None
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:200]


def reached_from_every_backend(stack: Any, worker: str, timeout_s: float = 240.0) -> int:
    """Bounded: until a burst of reads on `worker`'s shards, one per server connection of the
    pooler's pool, all succeed through the pooler at once. A worker whose host came back
    runs on a new address, and a link that still dials the old one waits on it (up to
    Toxiproxy's SYN retries; 1-3 min before the Swarm stacks cut them to about 7 s); a
    coordinator backend whose connection still points at the old task fails once on the
    statement timeout. The burst makes every pooled backend meet both before the wait
    ends. The bursts it took."""
    pool = POOL_SIZE
    dsn = stack.dsn()
    group = stack.manifest.group_of(worker)
    citus_group = group.citus_group if group is not None else None
    table = "events" if citus_group is None else CITUS_TABLE
    keys = keys_on(stack.dsn(via="router"), worker, 1, pool, citus_group)
    deadline = time.monotonic() + timeout_s
    bursts = 0
    errors: dict[str, int] = {}
    with ThreadPoolExecutor(pool) as workers:
        while time.monotonic() < deadline:
            bursts += 1
            failed = [e for e in workers.map(lambda k: _read(dsn, k, table), keys) if e is not None]
            if not failed:
                return bursts
            for e in failed:
                errors[e] = errors.get(e, 0) + 1
            time.sleep(0.5)
    raise PgchaosError(f"reads on {worker}'s shards still failing from some pooled backend "
                       f"after {timeout_s:.0f} s ({bursts} bursts of {pool}): "
                       + "; ".join(f"{e} (x{n})" for e, n in sorted(errors.items(), key=lambda x: -x[1])[:3]))
