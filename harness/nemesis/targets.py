"""Resolve a role (primary, replica, worker-1, router, ...) to one of this
stack's services or Toxiproxy links, at injection time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.errors import PgchaosError
from harness.stack.spec import COORDINATORS, WORKERS
from harness.stack.topology import discover

if TYPE_CHECKING:
    from harness.stack.stack import Stack

ROLE_ALIASES = {
    "router": "haproxy",
    "pooler": "pgbouncer",
    "dcs": "etcd",
}
NODE_ROLES = ("primary", "leader", "replica", "sync-standby", *ROLE_ALIASES)
LINK_ROLES = {
    "client": "pooler-router",
    "router": "pooler-router",
    "replication": "replication-{leader}",
    **{w: f"coordinator-{w}" for w in WORKERS},
}


def valid_node_targets(stack: Stack) -> list[str]:
    return sorted({*NODE_ROLES, *stack.services()})


def resolve_node(stack: Stack, role: str) -> str:
    """The service a role names right now (the current leader for `primary`)."""
    if role in ROLE_ALIASES:
        role = ROLE_ALIASES[role]
    if role in ("primary", "leader", "replica", "sync-standby"):
        topo = discover(stack)
        if role in ("primary", "leader"):
            if topo.leader is None:
                raise PgchaosError(f"no single leader to target (leaders: {topo.leaders})")
            return topo.leader
        wanted = [m.name for m in topo.replicas
                  if role == "replica" or m.role == "sync_standby"]
        if not wanted:
            raise PgchaosError(f"no {role} to target (members: {[m.name for m in topo.members]})")
        return sorted(wanted)[0]
    if role not in stack.services():
        raise PgchaosError(
            f"unknown target {role!r}; valid: {', '.join(valid_node_targets(stack))}")
    return role


def resolve_link(stack: Stack, role: str, links: list[str]) -> str:
    """The Toxiproxy link a role names (`replication` follows the leader)."""
    if role in links:
        return role
    pattern = LINK_ROLES.get(role)
    if pattern is None:
        valid = sorted({*links, *LINK_ROLES})
        raise PgchaosError(f"unknown link {role!r}; valid: {', '.join(valid)}")
    if "{leader}" in pattern:
        return pattern.format(leader=resolve_node(stack, "primary"))
    return pattern


def is_data_node(service: str) -> bool:
    return service in COORDINATORS or service in WORKERS
