"""Where each service runs on a multi-node swarm, and the check that it does.

Members of one group (the manifest's Patroni groups and worker groups) are
pinned to distinct nodes by the node label `io.pgchaos.slot` (member i of a
group on slot i mod N + 1; one-member groups spread over the slots after the
first), so one host never holds two members of a group. Every other service
(DCS, router, Toxiproxy, monitoring) is pinned to slot 1, the swarm's first
manager; a replicated pooler gets `max_replicas_per_node: 1`.

A replicated service whose tasks are members by slot (`hostname:
worker-{{.Task.Slot}}`, see harness.engines.swarm.slots) cannot pin one task: it
gets `max_replicas_per_node: 1` when its members share a group, and the check
reads its running tasks by member name like any other member.

Pinning keeps a member with its data: a member whose node is gone stays
pending until the node rejoins, as a member on a host's local disk would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from harness.engines.base import HealthCheck
from harness.engines.swarm.slots import SlottedService
from harness.engines.swarm_nodes.nodes import SLOT_LABEL

if TYPE_CHECKING:
    from harness.stack.manifest import Manifest

INFRA_SLOT = 1


def member_slots(manifest: Manifest, count: int) -> dict[str, int]:
    """Service -> slot for every member of every group."""
    out: dict[str, int] = {}
    spread = 0
    for group in manifest.groups:
        if len(group.members) == 1:
            out[group.members[0]] = (spread % max(count - 1, 1)) + (2 if count > 1 else 1)
            spread += 1
            continue
        for i, member in enumerate(group.members):
            out[member] = i % count + 1
    return out


def shares_a_group(manifest: Manifest, members: list[str]) -> bool:
    """Two of these members belong to one group (so their tasks need distinct nodes)."""
    groups = [g.name for g in [*manifest.groups, *manifest.spare_groups] for m in g.members if m in members]
    return len(groups) != len(set(groups))


def deploy_placement(manifest: Manifest, services: list[str], replicas: dict[str, int], count: int,
                     slotted: Mapping[str, SlottedService] | None = None) -> dict[str, dict[str, Any]]:
    """Service -> the `deploy` keys an override adds (placement). A slotted service (its
    tasks are members by slot) gets `max_replicas_per_node: 1` when two of its members
    are in one group (the coordinator's three tasks), and is left to Swarm's spread when
    each task is a group of its own (one-member worker groups)."""
    slots = member_slots(manifest, count)
    slotted = slotted or {}
    out: dict[str, dict[str, Any]] = {}
    for service in services:
        if service in slotted:
            if shares_a_group(manifest, slotted[service].members()):
                out[service] = {"placement": {"max_replicas_per_node": 1}}
        elif service in slots:
            out[service] = {"placement": {"constraints": [f"node.labels.{SLOT_LABEL}=={slots[service]}"]}}
        elif replicas.get(service, 1) > 1:
            out[service] = {"placement": {"max_replicas_per_node": 1}}
        else:
            out[service] = {"placement": {"constraints": [f"node.labels.{SLOT_LABEL}=={INFRA_SLOT}"]}}
    return out


def violations(manifest: Manifest, where: dict[str, str]) -> list[str]:
    """Groups with two members on one node, as sentences (`where`: service -> node)."""
    out = []
    for group in manifest.groups:
        seen: dict[str, list[str]] = {}
        for member in group.members:
            if member in where:
                seen.setdefault(where[member], []).append(member)
        out += [f"group {group.name}: {' and '.join(ms)} both on {node}" for node, ms in sorted(seen.items())
                if len(ms) > 1]
    return out


def placement_check(manifest: Manifest, placement: Callable[[], dict[str, str]]) -> HealthCheck:
    """The steady state's `placement`: every member of a group on its own node
    (`placement`: service -> the node its running task is on)."""
    where: dict[str, str] = {}
    with contextlib.suppress(Exception):
        where = placement()
    members = [m for g in manifest.groups for m in g.members]
    unplaced = sorted(m for m in members if m not in where)
    bad = violations(manifest, where)
    ok = not bad and not unplaced
    detail = ("every group's members on distinct nodes: "
              + ", ".join(f"{m}@{where[m]}" for m in members if m in where)) if ok else \
        "; ".join(bad + ([f"no running task: {', '.join(unplaced)}"] if unplaced else []))
    return HealthCheck("placement", ok, detail, {"nodes": where})
