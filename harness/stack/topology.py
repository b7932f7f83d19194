"""Who is who right now: leader, replicas with lag, workers, endpoints.

Read from Patroni's REST API (/cluster) on the coordinators' ports published
on 127.0.0.1, and from the workers themselves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import requests

from harness.errors import PgchaosError
from harness.stack.spec import COORDINATORS, WORKERS

if TYPE_CHECKING:
    from harness.stack.stack import Stack


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

    @property
    def leaders(self) -> list[str]:
        return [m.name for m in self.members if m.role in ("leader", "master", "primary")]

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
        }


def patroni_cluster(stack: Stack, timeout: float = 2.0) -> dict[str, Any]:
    """Patroni's /cluster document from the first coordinator that answers."""
    errors = []
    for name in COORDINATORS:
        try:
            resp = requests.get(f"{stack.patroni_url(name)}/cluster", timeout=timeout)
            resp.raise_for_status()
            return resp.json()
        except (requests.RequestException, PgchaosError) as exc:
            errors.append(f"{name}: {type(exc).__name__}")
    raise PgchaosError(f"no Patroni REST API answered ({'; '.join(errors)})")


def worker_up(stack: Stack, name: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(stack.dsn(name, connect_timeout=2), autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True
    except (psycopg.Error, PgchaosError):
        return False


def discover(stack: Stack) -> Topology:
    """The current topology; members are empty when no Patroni API answers."""
    topo = Topology()
    try:
        doc = patroni_cluster(stack)
    except PgchaosError:
        doc = {"members": []}
    for m in doc.get("members", []):
        lag = m.get("lag")
        topo.members.append(Member(
            name=m["name"], role=m.get("role", "unknown"), state=m.get("state", "unknown"),
            timeline=m.get("timeline"), lag_bytes=lag if isinstance(lag, int) else None,
        ))
    topo.workers = {w: worker_up(stack, w) for w in WORKERS}
    ports = stack.spec.ports
    topo.endpoints = {
        "pgbouncer": f"127.0.0.1:{ports.pgbouncer}",
        "haproxy_primary": f"127.0.0.1:{ports.haproxy_primary}",
        "haproxy_stats": f"http://127.0.0.1:{ports.haproxy_stats}/stats",
        "health": f"http://127.0.0.1:{ports.health}/health",
        "toxiproxy": f"http://127.0.0.1:{ports.toxiproxy}",
        "prometheus": f"http://127.0.0.1:{ports.prometheus}",
    }
    return topo
