"""What stack to test: its manifest, profile, config variant, mode and host ports."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from harness import assets, engines
from harness.errors import PgchaosError
from harness.stack.manifest import Manifest, load_manifest

COMPOSE_DIR = assets.compose_dir()  # the reference stack (package data, or the checkout's compose/)
MANIFEST_NAME = "pgchaos.toml"
PROFILES = {
    "local": "PostgreSQL + pgvector, Patroni, etcd, HAProxy, PgBouncer, Toxiproxy, Prometheus (Debian packages)",
    "citus": "Citus coordinator/worker groups under Patroni's Citus mode (needs Citus packages)",
}


def _port(name: str, default: int | None = None) -> int:
    raw = os.environ.get(f"PGCHAOS_{name.upper()}_PORT", str(DEFAULT_PORTS[name] if default is None else default))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise PgchaosError(f"PGCHAOS_{name.upper()}_PORT={raw!r} is not a port number")
    return int(raw)


DEFAULT_PORTS: dict[str, int] = {
    "pgbouncer": 6432, "haproxy_primary": 5000, "haproxy_replica": 5001, "haproxy_stats": 8404,
    "health": 8008, "toxiproxy": 8474, "prometheus": 9090, "alertmanager": 9093, "alert_receiver": 9095,
}


def shifted_ports(delta: int) -> dict[str, str]:
    """PGCHAOS_<NAME>_PORT for every default host port moved by ``delta``: a stack beside another."""
    return {f"PGCHAOS_{name.upper()}_PORT": str(port + delta) for name, port in DEFAULT_PORTS.items()}


@dataclass(frozen=True)
class Ports:
    """Host ports, all bound on 127.0.0.1; PGCHAOS_<NAME>_PORT overrides each."""

    pgbouncer: int = field(default_factory=lambda: _port("pgbouncer"))
    haproxy_primary: int = field(default_factory=lambda: _port("haproxy_primary"))
    haproxy_replica: int = field(default_factory=lambda: _port("haproxy_replica"))
    haproxy_stats: int = field(default_factory=lambda: _port("haproxy_stats"))
    health: int = field(default_factory=lambda: _port("health"))
    toxiproxy: int = field(default_factory=lambda: _port("toxiproxy"))
    prometheus: int = field(default_factory=lambda: _port("prometheus"))
    alertmanager: int = field(default_factory=lambda: _port("alertmanager"))
    alert_receiver: int = field(default_factory=lambda: _port("alert_receiver"))

    def as_env(self) -> dict[str, str]:
        return {f"PGCHAOS_{k.upper()}_PORT": str(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class StackSpec:
    """A stack to test: its manifest, a config variant, and whether pgchaos
    provisions it or attaches to one already running (`attach` = compose
    project name, or "" to find the one project that runs the manifest's services)."""

    profile: str = "local"
    compose_dir: Path = COMPOSE_DIR
    manifest_path: Path | None = None
    variant: str | None = None
    attach: str | None = None
    ports: Ports = field(default_factory=Ports)
    engine: str = engines.DEFAULT_ENGINE  # a name of harness.engines.ENGINES
    stack_name: str | None = None  # swarm: the stack's name (default postgres-mesh, or $PGCHAOS_SWARM_STACK)

    @property
    def manifest_file(self) -> Path:
        """The manifest given, else the profile's; a profile folder may hold a stack of its own
        for an engine (its `profile_folder`: the Citus profile's `swarm/` for the Swarm engines)."""
        if self.manifest_path is not None:
            return self.manifest_path
        folder = self.compose_dir / ("citus" if self.profile == "citus" else "")
        own = getattr(engines.engine(self.engine), "profile_folder", "")
        if own and (folder / own / MANIFEST_NAME).is_file():
            return folder / own / MANIFEST_NAME
        return folder / MANIFEST_NAME

    @cached_property
    def manifest(self) -> Manifest:
        return load_manifest(self.manifest_file)

    @property
    def compose_files(self) -> tuple[str, ...]:
        return self.manifest.compose_files

    @property
    def volume_size_mb(self) -> int:
        return self.manifest.volume_size_mb

    def validate(self) -> Manifest:
        if self.profile not in PROFILES:
            raise PgchaosError(f"unknown profile {self.profile!r}; valid: {', '.join(PROFILES)}")
        engine = engines.engine(self.engine)  # one line naming the valid ones
        if self.attach is not None and not engine.can_attach:
            attachable = [n for n in engines.names() if engines.engine(n).can_attach]
            raise PgchaosError(f"--attach works with --engine {' or '.join(attachable)} only; the {self.engine} "
                               "engine provisions its stack")
        manifest = self.manifest
        manifest.database.credentials()  # unset credentials: one line now, not a stack that cannot be checked
        if self.variant is not None:
            valid = variants(manifest)
            if self.variant not in valid:
                raise PgchaosError(f"unknown stack variant {self.variant!r}; valid: {', '.join(valid) or 'none'}")
            if self.attach is not None:
                raise PgchaosError("--stack-variant needs a stack pgchaos provisions; drop --attach")
        return manifest

    @property
    def variant_dir(self) -> Path | None:
        if self.variant is None:
            return None
        manifest = self.manifest
        return manifest.dir / (manifest.variants_dir or "variants") / self.variant


def variants(manifest: Manifest | Path = COMPOSE_DIR) -> list[str]:
    """Config variants beside a manifest (folders under its variants_dir)."""
    if isinstance(manifest, Path):
        root = manifest / "variants"
    else:
        root = manifest.dir / (manifest.variants_dir or "variants")
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
