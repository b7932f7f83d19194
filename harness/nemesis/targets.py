"""Resolve a role (primary, replica, candidate, worker-1, router, ...) to one of
this stack's services or Toxiproxy links, at injection time. Roles name parts
of the manifest; `ROLE@GROUP` picks a role inside another Patroni group."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.errors import PgchaosError
from harness.stack.topology import Topology, discover

if TYPE_CHECKING:
    from harness.stack.stack import Stack

MEMBER_ROLES = ("primary", "leader", "replica", "sync-standby", "candidate")
PART_ROLES = ("router", "pooler", "dcs")


def role_aliases(stack: Stack) -> dict[str, str]:
    """router / pooler / dcs -> the service the manifest names."""
    m = stack.manifest
    out = {"router": m.router.service, "dcs": m.dcs.members[0]}
    if m.pooler is not None:
        out["pooler"] = m.pooler.service
    return out


def link_roles(stack: Stack) -> dict[str, str]:
    """client / replication / <worker group> -> the Toxiproxy link (pattern) the manifest names."""
    toxi = stack.manifest.toxiproxy
    if toxi is None:
        return {}
    out = dict(toxi.workers)
    if toxi.client:
        out.update(client=toxi.client, router=toxi.client)
    if toxi.replication:
        out["replication"] = toxi.replication
    return out


def valid_node_targets(stack: Stack) -> list[str]:
    return sorted({*MEMBER_ROLES, *role_aliases(stack), *stack.services()})


def _group_members(stack: Stack, topo: Topology, group: str | None) -> tuple[str, list]:
    name = group or stack.manifest.coordinator.name
    stack.manifest.group(name)  # one line naming the groups when unknown
    return name, topo.groups.get(name, [])


def candidate(members: list, leaders: list[str]) -> str | None:
    """The member Patroni would accept for a switchover or failover: the sync
    standby in synchronous mode, else the streaming replica with the least lag."""
    replicas = [m for m in members if m.name not in leaders]
    sync = sorted(m.name for m in replicas if m.role == "sync_standby")
    if sync:
        return sync[0]
    streaming = [m for m in replicas if m.state == "streaming"]
    streaming.sort(key=lambda m: (m.lag_bytes or 0, m.name))
    return streaming[0].name if streaming else None


def resolve_node(stack: Stack, role: str) -> str:
    """The service a role names right now (the current leader for `primary`)."""
    role, _, group = role.partition("@")
    aliases = role_aliases(stack)
    if role in aliases:
        return aliases[role]
    if role in MEMBER_ROLES:
        topo = discover(stack)
        name, members = _group_members(stack, topo, group or None)
        leaders = topo.group_leaders(name)
        if role in ("primary", "leader"):
            if len(leaders) != 1:
                raise PgchaosError(f"no single leader in {name} to target (leaders: {leaders})")
            return leaders[0]
        if role == "candidate":
            chosen = candidate(members, leaders)
            if chosen is None:
                raise PgchaosError(f"no healthy switchover candidate in {name} "
                                   f"(members: {[(m.name, m.role, m.state) for m in members]})")
            return chosen
        wanted = [m.name for m in members if m.name not in leaders
                  and (role == "replica" or m.role == "sync_standby")]
        if not wanted:
            raise PgchaosError(f"no {role} in {name} to target (members: {[m.name for m in members]})")
        return sorted(wanted)[0]
    if role in PART_ROLES:
        raise PgchaosError(f"this stack has no {role} (manifest [{role}])")
    if role not in stack.services():
        raise PgchaosError(
            f"unknown target {role!r}; valid: {', '.join(valid_node_targets(stack))}")
    return role


def resolve_link(stack: Stack, role: str, links: list[str]) -> str:
    """The Toxiproxy link a role names (`replication` follows the leader)."""
    if role in links:
        return role
    roles = link_roles(stack)
    pattern = roles.get(role)
    if pattern is None:
        valid = sorted({*links, *roles})
        raise PgchaosError(f"unknown link {role!r}; valid: {', '.join(valid) or 'none (no toxiproxy)'}")
    if "{member}" in pattern:
        group = role if role in {g.name for g in stack.manifest.worker_groups} else ""
        return pattern.format(member=resolve_node(stack, f"primary@{group}" if group else "primary"))
    return pattern


def is_data_node(service: str, stack: Stack) -> bool:
    """A PostgreSQL member of one of the manifest's groups."""
    return stack.manifest.group_of(service) is not None
