"""What the Citus coordinator says about its formation: the metadata tables
(pg_dist_node, pg_dist_placement), the guide's health checks
(`citus_check_cluster_node_health()`, `citus_get_active_worker_nodes()`), and
which worker group a distribution key lives on. Read-only helpers over one
connection string (the router's, so they follow the coordinator leader)."""

from __future__ import annotations

import time
from typing import Any

import psycopg

NODE_SQL = ("SELECT nodeid, groupid, nodename, nodeport, noderole::text, isactive, shouldhaveshards "
            "FROM pg_dist_node ORDER BY groupid, noderole, nodeport")
PLACEMENT_SQL = ("SELECT p.shardid, p.groupid, s.logicalrelid::regclass::text, d.partmethod::text = 'n' "
                 "FROM pg_dist_placement p JOIN pg_dist_shard s USING (shardid) "
                 "JOIN pg_dist_partition d USING (logicalrelid) ORDER BY 1, 2")
HEALTH_SQL = "SELECT * FROM citus_check_cluster_node_health()"
ACTIVE_SQL = "SELECT node_name, node_port FROM citus_get_active_worker_nodes() ORDER BY 1, 2"
GROUP_OF_KEY_SQL = ("SELECT p.groupid FROM pg_dist_placement p "
                    "WHERE p.shardid = get_shard_id_for_distribution_column(%s::regclass, %s::bigint)")
KEYS_IN_GROUP_SQL = (
    "SELECT k FROM generate_series(%(first)s::bigint, %(last)s::bigint) k "
    "WHERE (SELECT p.groupid FROM pg_dist_placement p WHERE p.shardid = "
    "get_shard_id_for_distribution_column(%(table)s::regclass, k) LIMIT 1) = %(group)s LIMIT %(count)s")


CONNECT_ATTEMPTS = 3  # a busy coordinator may miss one connect timeout; a query error is not retried


def _rows(dsn: str, sql: str, params: Any = None) -> list[tuple]:
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.OperationalError:
            if attempt == CONNECT_ATTEMPTS - 1:
                raise
            time.sleep(1.0)
            continue
        with conn:
            return [tuple(r) for r in conn.execute(sql, params).fetchall()]
    raise AssertionError("unreachable")


def nodes(dsn: str) -> list[dict[str, Any]]:
    """pg_dist_node, one dict per row."""
    cols = ("nodeid", "groupid", "nodename", "nodeport", "noderole", "isactive", "shouldhaveshards")
    return [dict(zip(cols, r, strict=True)) for r in _rows(dsn, NODE_SQL)]


def placements(dsn: str) -> list[dict[str, Any]]:
    """pg_dist_placement with each shard's table (and whether it is a reference table's), one dict each."""
    return [{"shardid": s, "groupid": g, "table": t, "reference": r} for s, g, t, r in _rows(dsn, PLACEMENT_SQL)]


def metadata(dsn: str) -> dict[str, Any]:
    """pg_dist_node and pg_dist_placement as they stand."""
    return {"pg_dist_node": nodes(dsn), "pg_dist_placement": placements(dsn)}


def primaries(dsn: str) -> dict[int, str]:
    """Worker group id -> its primary's address as Citus knows it (host:port)."""
    return {n["groupid"]: f"{n['nodename']}:{n['nodeport']}" for n in nodes(dsn)
            if n["noderole"] == "primary" and n["groupid"] > 0}


def node_health(dsn: str) -> list[dict[str, Any]]:
    """citus_check_cluster_node_health(): every node's view of every other."""
    out = []
    for r in _rows(dsn, HEALTH_SQL):
        out.append({"from": f"{r[0]}:{r[1]}", "to": f"{r[2]}:{r[3]}", "ok": r[4]})
    return out


def active_workers(dsn: str) -> list[str]:
    """citus_get_active_worker_nodes() as host:port."""
    return [f"{h}:{p}" for h, p in _rows(dsn, ACTIVE_SQL)]


def group_of_key(dsn: str, table: str, key: int) -> int:
    """The worker group that holds `key`'s shard of a distributed table."""
    return _rows(dsn, GROUP_OF_KEY_SQL, (table, key))[0][0]


def keys_in_group(dsn: str, table: str, group: int, first: int, count: int) -> list[int]:
    """`count` keys from `first` on whose shard of `table` lives on worker group `group`."""
    rows = _rows(dsn, KEYS_IN_GROUP_SQL, {"table": table, "group": group, "first": first,
                                          "last": first + 40 * count, "count": count})
    return [k for (k,) in rows]


def placements_per_group(dsn: str, reference: bool = False) -> dict[int, int]:
    """Worker group id -> placements of distributed tables' shards (reference tables' replicas too
    with `reference`; those live on every node, drains leave them and citus_remove_node drops them)."""
    out: dict[int, int] = {}
    for p in placements(dsn):
        if p["reference"] and not reference:
            continue
        out[p["groupid"]] = out.get(p["groupid"], 0) + 1
    return dict(sorted(out.items()))


def error_text(exc: BaseException) -> str:
    """Citus's error as it says it (sqlstate, first line, and its hint when there is one)."""
    diag = getattr(exc, "diag", None)
    sqlstate = getattr(exc, "sqlstate", None)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    hint = getattr(diag, "message_hint", None) if diag is not None else None
    return f"{sqlstate + ' ' if sqlstate else ''}{first}{f' (HINT: {hint})' if hint else ''}"[:500]
