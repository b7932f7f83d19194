"""The engine seam: what a deployment engine must do for the harness.

An engine runs one stack's services (Jepsen's `control`: what runs where).
Faults, the steady state, heal-all and the stack talk to the `Deployment`
protocol, never to compose labels or Swarm tasks; each engine is a package of
its own under `harness/engines/` (its deployment, faults, health checks and
garbage collection) registered by name in `harness.engines`. What an engine
cannot do is a capability it does not declare (`capabilities`), or one clear
error from the verb.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import docker
import docker.errors
import requests

from harness.errors import PgchaosError

if TYPE_CHECKING:
    from harness.stack.manifest import Manifest
    from harness.stack.spec import Ports

OWNER_LABEL = "io.pgchaos.owner"
RUN_LABEL = "io.pgchaos.run"
PID_LABEL = "io.pgchaos.owner-pid"
DETACHED_LABEL = "io.pgchaos.detached"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
LOOPBACK = ("127.0.0.1", "")


@dataclass(frozen=True)
class EngineContext:
    """What an engine is given to run one stack: the stack's manifest, this run's
    names and files, and how to report progress."""

    run_id: str
    manifest: Manifest
    ports: Ports
    state_dir: Path
    env_file: Path  # pgchaos's own variables for the run (written by the stack)
    override_file: Path  # the ownership override (written through `write_owner_override`)
    attach: str | None = None  # attach mode: the project/stack to attach to ("" = find it)
    stack_name: str | None = None  # a name the user chose for the stack (engines that take one)
    progress: Callable[[str], None] = field(default=print)

    @property
    def provisioned(self) -> bool:
        return self.attach is None


@dataclass
class HealthCheck:
    """One check of a stack's health: the steady state's own (the operations guide's daily
    health check, `harness.stack.steady_state.Check`) and an engine's (`health_checks`)."""

    name: str
    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


class Deployment(Protocol):
    """An engine that runs one stack's services. A *service* is the manifest's name for
    it (coordinator-1, haproxy); a container is a docker-py container of that service's
    current instance, on whichever Docker engine runs it."""

    name: ClassVar[str]  # the engine's name (`--engine NAME`)
    description: ClassVar[str]
    can_attach: ClassVar[bool]  # works on a stack someone else started
    project: str
    provisioned: bool  # True when pgchaos created the stack (and may remove it)

    @classmethod
    def create(cls, ctx: EngineContext) -> Deployment: ...
    @classmethod
    def capabilities(cls, caps: dict[str, int]) -> dict[str, int]: ...
    @classmethod
    def collect(cls, everything: bool, progress: Callable[[str], None]) -> list[str]: ...

    # lifecycle
    def up(self, timeout_s: float = 180.0) -> None: ...
    def down(self) -> None: ...
    def find(self, services: list[str], all_running: bool = True) -> None: ...
    def write_owner_override(self, path: Path, labels: dict[str, str]) -> None: ...
    def published_ports(self) -> list[tuple[str, str, int]]: ...
    def engine_images(self) -> dict[str, Path]: ...  # the engine's own images (tag -> build folder)
    # what runs
    def services(self, every_profile: bool = False) -> list[str]: ...
    def containers(self) -> dict[str, Any]: ...
    def container(self, service: str) -> Any: ...
    def owns(self, container: Any) -> bool: ...
    def refuse_unless_owned(self, container: Any) -> Any: ...
    def endpoint(self, service: str, port: int) -> tuple[str, int]: ...
    def health_checks(self) -> list[HealthCheck]: ...
    # verbs
    def exec(self, service: str, cmd: list[str], user: str | None = None,
             timeout: float = 60.0) -> tuple[int, str]: ...
    def run_tool(self, service: str, script: str, *args: str, timeout: float = 600.0) -> tuple[int, str]: ...
    def logs(self, service: str, tail: int | None = None, since: int | None = None) -> str: ...
    def kill(self, service: str, signal: str = "SIGKILL") -> None: ...
    def stop(self, service: str, timeout: int = 20) -> None: ...
    def restart(self, service: str, timeout: int = 10) -> None: ...
    def start(self, service: str) -> None: ...
    def pause(self, service: str) -> None: ...
    def unpause(self, service: str) -> None: ...
    def disconnect(self, service: str) -> None: ...
    def reconnect(self, service: str) -> None: ...
    def networks_of(self, service: str) -> tuple[str, list[str]]: ...
    def heal_all(self, services: Sequence[str] | None = None) -> None: ...
    # services beyond the stack's default set (e.g. a spare Citus worker group)
    def start_services(self, services: list[str], profile: str | None = None) -> None: ...
    def remove_service(self, service: str) -> None: ...


# An engine busy writing images (a `docker load` into swarm nodes, builds) answers API calls
# late: 30 s was seen to run out on a 2-core machine with three stacks and a load going.
# The CLI waits without bound; the harness bounds each call, generously.
DOCKER_API_TIMEOUT_S = 120


def docker_client() -> docker.DockerClient:
    """A Docker client, or one clear error when no engine answers."""
    try:
        client = docker.from_env(timeout=DOCKER_API_TIMEOUT_S)
        client.ping()
        return client
    except docker.errors.DockerException as exc:
        raise PgchaosError(
            f"Docker daemon unreachable ({type(exc).__name__}); run: bash compose/scripts/setup-host.sh"
        ) from None


def is_ours(labels: dict[str, str]) -> bool:
    """Created by a pgchaos run: the owner label and a run id. pgchaos's images carry the
    owner label too (containers inherit image labels), so the owner label alone proves nothing."""
    return labels.get(OWNER_LABEL) == "pgchaos" and bool(labels.get(RUN_LABEL))


STATE_LABEL = "io.pgchaos.state-dir"  # the state folder of the run: `gc --all` removes live runs of its own only


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_alive(labels: dict[str, str]) -> bool:
    """A resource of a live run: started detached, or its owner process still runs."""
    return labels.get(DETACHED_LABEL) == "true" or pid_alive(int(labels.get(PID_LABEL, "0") or 0))


def ownership_labels(run_id: str, owner_pid: int, detached: bool, state_dir: str = "") -> dict[str, str]:
    labels = {OWNER_LABEL: "pgchaos", RUN_LABEL: run_id, PID_LABEL: str(owner_pid),
              DETACHED_LABEL: "true" if detached else "false"}
    return {**labels, STATE_LABEL: state_dir} if state_dir else labels


class ContainerVerbs:
    """The verbs every engine runs on a service's current container (`container(service)`)."""

    project: str

    def container(self, service: str) -> Any:
        raise NotImplementedError

    def owns(self, container: Any) -> bool:
        raise NotImplementedError

    def refuse_unless_owned(self, container: Any) -> Any:
        """The container, or one clear error when it is not this stack's (never touched)."""
        if not self.owns(container):
            raise PgchaosError(f"refusing to touch {container.name}: not part of {self.project}")
        return container

    def exec(self, service: str, cmd: list[str], user: str | None = None,
             timeout: float = 60.0) -> tuple[int, str]:
        """Run a command in a service's container; returns (exit code, output)."""
        args = ["docker", "exec"] + (["-u", user] if user else []) + [self.container(service).id, *cmd]
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return 124, f"timed out after {timeout:.0f} s"
        return proc.returncode, proc.stdout + proc.stderr

    def logs(self, service: str, tail: int | None = None, since: int | None = None) -> str:
        kwargs: dict[str, Any] = {"tail": tail if tail is not None else "all"}
        if since is not None:
            kwargs["since"] = since
        raw: bytes = self.container(service).logs(**kwargs)
        return raw.decode(errors="replace")

    def kill(self, service: str, signal: str = "SIGKILL") -> None:
        self.container(service).kill(signal=signal)

    def stop(self, service: str, timeout: int = 20) -> None:
        self.container(service).stop(timeout=timeout)

    def pause(self, service: str) -> None:
        self.container(service).pause()

    def unpause(self, service: str) -> None:
        container = self.container(service)
        container.reload()
        if container.status == "paused":
            container.unpause()

    def restart(self, service: str, timeout: int = 10) -> None:
        self.container(service).restart(timeout=timeout)

    def start(self, service: str) -> None:
        """The service's container running again (unpaused, or started)."""
        ensure_running(self.container(service))

    def disconnect(self, service: str) -> None:
        raise PgchaosError(f"{type(self).__name__}: cannot take {service} off the stack network")

    def reconnect(self, service: str) -> None:
        """Nothing to undo where nothing can be disconnected."""

    def networks_of(self, service: str) -> tuple[str, list[str]]:
        """(the stack network's name, the networks the service's container is attached to)."""
        container = self.container(service)
        container.reload()
        return "", sorted((container.attrs.get("NetworkSettings") or {}).get("Networks") or {})

    def health_checks(self) -> list[HealthCheck]:
        return []

    def start_services(self, services: list[str], profile: str | None = None) -> None:
        raise PgchaosError(f"{type(self).__name__}: cannot start services beyond the stack's own")

    def remove_service(self, service: str) -> None:
        """Remove a service's container and its anonymous volumes (one started by `start_services`)."""
        self.container(service).remove(force=True, v=True)

    @classmethod
    def capabilities(cls, caps: dict[str, int]) -> dict[str, int]:
        """The manifest's capabilities as this engine can serve them (unchanged by default)."""
        return caps

    @classmethod
    def collect(cls, everything: bool, progress: Callable[[str], None]) -> list[str]:
        """Garbage of this engine that dead runs left (stacks removed, by name); none by default."""
        return []


def ensure_running(container: Any) -> None:
    """Unpause or start a container that a fault left down (one removed meanwhile is left to
    its engine: Swarm replaces it, compose's heal-all finds it missing)."""
    try:
        container.reload()
    except docker.errors.NotFound:
        return
    if container.status == "paused":
        container.unpause()
    elif container.status in ("exited", "created", "dead"):
        with contextlib.suppress(Exception):
            container.start()


def reconnect(network: Any, container: Any, alias: str, reload: bool = True) -> None:
    """Put a container back on a network (under its service name) unless it is on it
    (`reload=False`: the network was just reloaded for several containers)."""
    if reload:
        network.reload()
    # the ids in the network's own listing: Network.containers would inspect each container
    if container.id not in (network.attrs.get("Containers") or {}):
        with contextlib.suppress(docker.errors.APIError):
            network.connect(container, aliases=[alias])


def remove_project_resources(client: docker.DockerClient, project: str) -> None:
    """Force-remove containers, networks and volumes of one project (compose's project label) that
    carry our run labels: what a teardown or gc leaves nobody else."""
    filters = {"label": [f"{PROJECT_LABEL}={project}", f"{OWNER_LABEL}=pgchaos", RUN_LABEL]}
    for container in client.containers.list(all=True, filters=filters, ignore_removed=True):
        with contextlib.suppress(docker.errors.APIError):  # gone, or already being removed
            container.remove(force=True, v=True)
    for network in client.networks.list(filters=filters):
        with contextlib.suppress(docker.errors.APIError):
            network.remove()
    for volume in client.volumes.list(filters=filters):
        # a large volume (a swarm node's image store) may outlast the API timeout; the engine finishes it
        with contextlib.suppress(docker.errors.APIError, requests.RequestException):
            volume.remove(force=True)
