"""Who is who right now, per group: leader, sync standby, replicas with lag,
and the plain worker nodes, from Patroni's REST API (/cluster) on the members'
ports published on 127.0.0.1. The groups come from the stack's manifest; the
roles are discovered, never assumed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import requests

from harness.errors import PgchaosError

if TYPE_CHECKING:
    from harness.stack.manifest import Group
    from harness.stack.stack import Stack


LEADER_ROLES = ("leader", "master", "primary")


@dataclass
class Member:
    name: str
    role: str  # leader | sync_standby | replica | standby_leader
    state: str  # running | streaming | stopped | ...
    timeline: int | None = None
    lag_bytes: int | None = None


@dataclass
class Topology:
    members: list[Member] = field(default_factory=list)
    workers: dict[str, bool] = field(default_factory=dict)  # name -> accepting connections
    endpoints: dict[str, str] = field(default_factory=dict)
    groups: dict[str, list[Member]] = field(default_factory=dict)  # every Patroni group's members

    @property
    def leaders(self) -> list[str]:
        return [m.name for m in self.members if m.role in LEADER_ROLES]

    @property
    def leader(self) -> str | None:
        leaders = self.leaders
        return leaders[0] if len(leaders) == 1 else None

    @property
    def replicas(self) -> list[Member]:
        return [m for m in self.members if m.name not in self.leaders]

    def as_dict(self) -> dict[str, Any]:
        return {
            "leader": self.leader,
            "replicas": [asdict(m) for m in self.replicas],
            "workers": [{"name": n, "up": up} for n, up in self.workers.items()],
            "members": [asdict(m) for m in self.members],
            "endpoints": self.endpoints,
            "groups": {g: [asdict(m) for m in ms] for g, ms in self.groups.items()},
        }

    def group_leaders(self, group: str) -> list[str]:
        return [m.name for m in self.groups.get(group, []) if m.role in LEADER_ROLES]


def patroni_cluster(stack: Stack, group: Group | None = None, timeout: float = 2.0) -> dict[str, Any]:
    """Patroni's /cluster document of a group (the coordinator's by default),
    from the first member that answers."""
    group = group or stack.manifest.coordinator
    errors = []
    for name in group.members:
        try:
            resp = requests.get(f"{stack.patroni_url(name)}/cluster", timeout=timeout)
            resp.raise_for_status()
            return resp.json()
        except (requests.RequestException, PgchaosError) as exc:
            errors.append(f"{name}: {type(exc).__name__}")
    raise PgchaosError(f"no Patroni REST API of {group.name} answered ({'; '.join(errors)})")


def worker_up(stack: Stack, name: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(stack.dsn(name, connect_timeout=2), autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True
    except (psycopg.Error, PgchaosError):
        return False


def _members(doc: dict[str, Any], citus_group: int | None = None) -> list[Member]:
    out = []
    for m in doc.get("members", []):
        if citus_group is not None and m.get("group", citus_group) != citus_group:
            continue  # a Citus coordinator's /cluster may list every group
        lag = m.get("lag")
        out.append(Member(name=m["name"], role=m.get("role", "unknown"), state=m.get("state", "unknown"),
                          timeline=m.get("timeline"), lag_bytes=lag if isinstance(lag, int) else None))
    return out


def discover(stack: Stack) -> Topology:
    """The current topology; a group's members are empty when no Patroni API of it answers."""
    manifest = stack.manifest
    topo = Topology()
    for group in manifest.patroni_groups:
        try:
            topo.groups[group.name] = _members(patroni_cluster(stack, group), group.citus_group)
        except PgchaosError:
            topo.groups[group.name] = []
    topo.members = topo.groups.get(manifest.coordinator.name, [])
    for group in manifest.worker_groups:
        if group.patroni:
            topo.workers[group.name] = len(topo.group_leaders(group.name)) == 1
        else:
            topo.workers.update({m: worker_up(stack, m) for m in group.members})
    topo.endpoints = _endpoints(stack)
    return topo


def _endpoints(stack: Stack) -> dict[str, str]:
    """Where the harness reaches the stack from the host (127.0.0.1 only)."""
    m = stack.manifest
    wanted = [("router", m.router.service, m.router.primary_port, "{}"),
              ("router_replicas", m.router.service, m.router.replica_port, "{}"),
              ("router_stats", m.router.service, m.router.stats_port, "http://{}"),  # its path is the stack's
              ("router_health", m.router.service, m.router.health_port, "http://{}/health")]
    if m.pooler:
        wanted.append(("pooler", m.pooler.service, m.pooler.port, "{}"))
    if m.toxiproxy:
        wanted.append(("toxiproxy", m.toxiproxy.service, m.toxiproxy.api_port, "http://{}"))
    if m.monitoring and m.monitoring.prometheus:
        wanted.append(("prometheus", m.monitoring.prometheus, m.monitoring.prometheus_port, "http://{}"))
    if m.monitoring and m.monitoring.alertmanager:
        wanted.append(("alertmanager", m.monitoring.alertmanager, m.monitoring.alertmanager_port, "http://{}"))
    out = {}
    for name, service, port, form in wanted:
        if port is None:
            continue
        try:
            out[name] = form.format(stack.endpoint(service, port))
        except PgchaosError:
            out[name] = "unreachable"
    return out
