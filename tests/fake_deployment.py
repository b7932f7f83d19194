"""A Deployment without Docker: containers in memory, the protocol's verbs on them.

Self-tests of faults, heal-all and the steady state use it instead of an engine;
`tests/test_engines.py` runs the same contract over it and every registered
engine class."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from harness.engines.base import ContainerVerbs, EngineContext, HealthCheck, ensure_running
from harness.errors import PgchaosError

NETWORK = "fake_cluster"


class FakeDeployment(ContainerVerbs):
    """Service -> container objects with docker-py's shape (status, attrs, reload, kill, ...)."""

    name: ClassVar[str] = "fake"
    description: ClassVar[str] = "containers in memory (self-tests)"
    can_attach: ClassVar[bool] = True

    def __init__(self, containers: dict[str, Any], project: str = "pgchaos-fake") -> None:
        self.project = project
        self.provisioned = True
        self._containers = containers
        self.cut: set[str] = set()  # services taken off the stack network
        self.up_calls = 0

    @classmethod
    def create(cls, ctx: EngineContext) -> FakeDeployment:
        return cls({}, project=ctx.attach or f"pgchaos-{ctx.run_id}")

    @classmethod
    def collect(cls, everything: bool, progress: Callable[[str], None]) -> list[str]:
        return []

    def up(self, timeout_s: float = 180.0) -> None:
        self.up_calls += 1

    def down(self) -> None:
        self._containers.clear()

    def find(self, services: list[str], all_running: bool = True) -> None:
        missing = [s for s in services if s not in self._containers]
        if missing:
            raise PgchaosError(f"--attach: {self.project}: service(s) not found: {', '.join(missing)}")

    def write_owner_override(self, path: Path, labels: dict[str, str]) -> None:
        path.write_text("{}\n")

    def published_ports(self) -> list[tuple[str, str, int]]:
        return []

    def engine_images(self) -> dict[str, Path]:
        return {}

    def services(self, every_profile: bool = False) -> list[str]:
        return sorted(self._containers)

    def containers(self) -> dict[str, Any]:
        return dict(self._containers)

    def container(self, service: str) -> Any:
        if service not in self._containers:
            raise PgchaosError(f"no service {service!r} in {self.project}")
        return self._containers[service]

    def owns(self, container: Any) -> bool:
        return any(c is container for c in self._containers.values())

    def endpoint(self, service: str, port: int) -> tuple[str, int]:
        self.container(service)
        return "127.0.0.1", port

    def run_tool(self, service: str, script: str, *args: str, timeout: float = 600.0) -> tuple[int, str]:
        raise PgchaosError("no one-shot tools in memory")

    def exec(self, service: str, cmd: list[str], user: str | None = None,
             timeout: float = 60.0) -> tuple[int, str]:
        self.container(service)
        return 0, ""

    def disconnect(self, service: str) -> None:
        self.container(service)
        self.cut.add(service)

    def reconnect(self, service: str) -> None:
        self.cut.discard(service)

    def networks_of(self, service: str) -> tuple[str, list[str]]:
        self.container(service)
        return NETWORK, [] if service in self.cut else [NETWORK]

    def health_checks(self) -> list[HealthCheck]:
        return []

    def heal_all(self, services: Sequence[str] | None = None) -> None:
        for service, container in self._containers.items():
            if services is None or service in services:
                ensure_running(container)
                self.cut.discard(service)
