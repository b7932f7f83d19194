"""Manifest members that are task slots of a replicated Swarm service.

A stack-file service whose `hostname` holds Swarm's `{{.Task.Slot}}` template
(`hostname: worker-{{.Task.Slot}}`) gives each of its tasks an identity: the
hostname with the slot filled in. Those hostnames are the manifest's members
(`worker-1` … `worker-N` = slots 1 … N of `postgres-mesh_worker`), so the
harness reaches a member through the task that holds its slot. A service
without such a hostname is one member per service, named as the service.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SLOT_TEMPLATE = "{{.Task.Slot}}"


@dataclass(frozen=True)
class SlottedService:
    """A replicated service whose tasks are members named by their slot."""

    service: str
    hostname: str  # the template, e.g. "worker-{{.Task.Slot}}"
    replicas: int

    def member(self, slot: int) -> str:
        return self.hostname.replace(SLOT_TEMPLATE, str(int(slot)))

    def slot_of(self, member: str) -> int | None:
        """The slot a member name stands for, None when it is not one of this service's."""
        head, _, tail = self.hostname.partition(SLOT_TEMPLATE)
        match = re.fullmatch(re.escape(head) + r"([1-9][0-9]*)" + re.escape(tail), member)
        return int(match.group(1)) if match else None

    def members(self, replicas: int | None = None) -> list[str]:
        return [self.member(slot) for slot in range(1, (self.replicas if replicas is None else replicas) + 1)]


def slotted_services(services: Mapping[str, Any]) -> dict[str, SlottedService]:
    """The stack file's services (name -> definition) whose hostname names each task by slot."""
    out: dict[str, SlottedService] = {}
    for name, svc in services.items():
        hostname = str((svc or {}).get("hostname") or "")
        if SLOT_TEMPLATE in hostname:
            replicas = int(((svc or {}).get("deploy") or {}).get("replicas", 1))
            out[name] = SlottedService(name, hostname, replicas)
    return out


def task_of(member: str, slotted: Mapping[str, SlottedService]) -> tuple[str, int] | None:
    """(service, slot) of a member that is a task slot; None for a member that is a service."""
    if member in slotted:
        return None
    for service in slotted.values():
        slot = service.slot_of(member)
        if slot is not None:
            return service.service, slot
    return None
