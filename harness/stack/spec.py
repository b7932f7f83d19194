"""What a stack is made of: profile, compose files, config variant, ports."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import PgchaosError

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO_ROOT / "compose"
PROFILES = {
    "local": "PostgreSQL + pgvector, Patroni, etcd, HAProxy, PgBouncer, Toxiproxy, Prometheus (Debian packages)",
    "citus": "Citus coordinator/worker groups under Patroni's Citus mode (needs Citus packages)",
}
DATA_NODES = ("coordinator-1", "coordinator-2", "coordinator-3", "worker-1", "worker-2")
COORDINATORS = DATA_NODES[:3]
WORKERS = DATA_NODES[3:]
APP_USER = "dpg_cluster"
APP_PASSWORD = "dpg_cluster_pw"
APP_DB = "distributed_postgres_cluster"
SUPERUSER_PASSWORD = "postgres_pw"


def _port(name: str, default: int) -> int:
    raw = os.environ.get(f"PGCHAOS_{name.upper()}_PORT", str(default))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise PgchaosError(f"PGCHAOS_{name.upper()}_PORT={raw!r} is not a port number")
    return int(raw)


@dataclass(frozen=True)
class Ports:
    """Host ports, all bound on 127.0.0.1; PGCHAOS_<NAME>_PORT overrides each."""

    pgbouncer: int = field(default_factory=lambda: _port("pgbouncer", 6432))
    haproxy_primary: int = field(default_factory=lambda: _port("haproxy_primary", 5000))
    haproxy_replica: int = field(default_factory=lambda: _port("haproxy_replica", 5001))
    haproxy_stats: int = field(default_factory=lambda: _port("haproxy_stats", 8404))
    health: int = field(default_factory=lambda: _port("health", 8008))
    toxiproxy: int = field(default_factory=lambda: _port("toxiproxy", 8474))
    prometheus: int = field(default_factory=lambda: _port("prometheus", 9090))

    def as_env(self) -> dict[str, str]:
        return {f"PGCHAOS_{k.upper()}_PORT": str(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class StackSpec:
    """A stack to provision: profile, compose files and an optional config variant."""

    profile: str = "local"
    compose_dir: Path = COMPOSE_DIR
    compose_files: tuple[str, ...] = ("docker-compose.yml",)
    variant: str | None = None
    volume_size_mb: int = 1024
    ports: Ports = field(default_factory=Ports)

    def validate(self) -> None:
        if self.profile not in PROFILES:
            raise PgchaosError(f"unknown profile {self.profile!r}; valid: {', '.join(PROFILES)}")
        if self.profile == "citus":
            raise PgchaosError(
                "profile 'citus' needs the Citus packages, which no reachable registry "
                "provides here; use --profile local"
            )
        for name in self.compose_files:
            if not (self.compose_dir / name).is_file():
                raise PgchaosError(f"compose file not found: {self.compose_dir / name}")
        if self.variant is not None and self.variant not in variants(self.compose_dir):
            valid = ", ".join(variants(self.compose_dir)) or "none"
            raise PgchaosError(f"unknown stack variant {self.variant!r}; valid: {valid}")

    @property
    def variant_dir(self) -> Path | None:
        return None if self.variant is None else self.compose_dir / "variants" / self.variant


def variants(compose_dir: Path = COMPOSE_DIR) -> list[str]:
    root = compose_dir / "variants"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
