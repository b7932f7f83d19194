"""The deployment seam: what an engine must do for the harness.

Faults, the steady state and the stack talk to this protocol, never to
compose labels. Compose is the engine today (`ComposeDeployment`, in two
modes: provision, where pgchaos brings the stack up from the user's compose
files plus a generated override that adds its ownership labels, and attach,
where it works on a compose project that is already running and owns
nothing but the faults it injects). The Docker Swarm engine
(`docker stack deploy`, `--engine swarm`) is `harness.stack.swarm.SwarmDeployment`.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import docker
import docker.errors
import requests
from testcontainers.compose import DockerCompose

from harness.errors import PgchaosError
from harness.stack.refusals import RefusalWatch

OWNER_LABEL = "io.pgchaos.owner"
RUN_LABEL = "io.pgchaos.run"
PID_LABEL = "io.pgchaos.owner-pid"
DETACHED_LABEL = "io.pgchaos.detached"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
LOOPBACK = ("127.0.0.1", "")


class Deployment(Protocol):
    """An engine that runs one stack's services (Jepsen's `control`: what runs where)."""

    project: str
    provisioned: bool  # True when pgchaos created the stack (and may remove it)

    def up(self) -> None: ...
    def down(self) -> None: ...
    def services(self) -> list[str]: ...
    def containers(self) -> dict[str, Any]: ...
    def container(self, service: str) -> Any: ...
    def owns(self, container: Any) -> bool: ...
    def exec(self, service: str, cmd: list[str], user: str | None = None,
             timeout: float = 60.0) -> tuple[int, str]: ...
    def logs(self, service: str, tail: int | None = None, since: int | None = None) -> str: ...
    def kill(self, service: str, signal: str = "SIGKILL") -> None: ...
    def stop(self, service: str, timeout: int = 20) -> None: ...
    def start(self, service: str) -> None: ...
    def pause(self, service: str) -> None: ...
    def unpause(self, service: str) -> None: ...
    def disconnect(self, service: str) -> Callable[[], None]: ...
    def endpoint(self, service: str, port: int) -> tuple[str, int]: ...


def docker_client() -> docker.DockerClient:
    """A Docker client, or one clear error when no engine answers."""
    try:
        client = docker.from_env(timeout=30)
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


def ownership_labels(run_id: str, owner_pid: int, detached: bool, state_dir: str = "") -> dict[str, str]:
    labels = {OWNER_LABEL: "pgchaos", RUN_LABEL: run_id, PID_LABEL: str(owner_pid),
              DETACHED_LABEL: "true" if detached else "false"}
    return {**labels, STATE_LABEL: state_dir} if state_dir else labels


class ContainerVerbs:
    """The verbs every engine runs on a service's current container (`container(service)`)."""

    def container(self, service: str) -> Any:
        raise NotImplementedError

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
        return self.container(service).logs(**kwargs).decode(errors="replace")

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


class ComposeDeployment(ContainerVerbs):
    """A compose project: provisioned by pgchaos, or attached to."""

    def __init__(self, project: str, workdir: Path, compose_files: list[str],
                 env_files: list[Path] | None = None, provisioned: bool = True) -> None:
        """`env_files` in order, a later file's variable winning (compose's `--env-file`
        given several times): the stack's own `.env` and env files, then pgchaos's."""
        self.project = project
        self.workdir = workdir
        self.compose_files = compose_files
        self.env_files = list(env_files or [])
        self.provisioned = provisioned
        self._docker: docker.DockerClient | None = None
        self._services: list[str] | None = None
        self.compose = DockerCompose(context=str(workdir), compose_file_name=list(compose_files),
                                     env_file=[str(f) for f in self.env_files] or None, wait=True)

    @property
    def docker(self) -> docker.DockerClient:
        if self._docker is None:
            self._docker = docker_client()
        return self._docker

    @property
    def command(self) -> list[str]:
        cmd = [*self.compose.compose_command_property]
        return cmd if self.provisioned else [*cmd, "-p", self.project]

    def _compose(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run([*self.command, *args], cwd=self.workdir, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PgchaosError(f"docker compose {args[0]} timed out after {timeout:.0f} s") from None

    # -- the compose model -----------------------------------------------------------
    def config(self, every_profile: bool = True) -> dict[str, Any]:
        """The merged compose model (`docker compose config --format json`)."""
        profiles = ["--profile", "*"] if every_profile else []
        proc = self._compose(*profiles, "config", "--format", "json")
        if proc.returncode != 0:
            line = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise PgchaosError(f"docker compose config failed: {line}")
        return json.loads(proc.stdout)

    def services(self, every_profile: bool = False) -> list[str]:
        """Service names the compose files start by default (or of every profile)."""
        if every_profile:
            return sorted(self.config().get("services", {}))
        if self._services is None:
            self._services = sorted(self.config(every_profile=False).get("services", {}))
        return self._services

    def write_owner_override(self, path: Path, labels: dict[str, str]) -> None:
        """A compose override adding our labels to every service and network."""
        model = self.config()
        doc: dict[str, Any] = {
            "services": {name: {"labels": labels} for name in model.get("services", {})},
            "networks": {name: {"labels": labels} for name, net in model.get("networks", {}).items()
                         if not net.get("external")},
        }
        path.write_text(json.dumps(doc, indent=2))  # JSON is YAML

    def published_ports(self) -> list[tuple[str, str, int]]:
        """(service, host ip, host port) for every fixed published port of the model."""
        out = []
        for name, svc in self.config().get("services", {}).items():
            for p in svc.get("ports") or []:
                published = str(p.get("published") or "")
                if published.isdigit():
                    out.append((name, p.get("host_ip") or "0.0.0.0", int(published)))
                elif published or p.get("host_ip") not in ("127.0.0.1",):
                    out.append((name, p.get("host_ip") or "0.0.0.0", 0))
        return out

    # -- lifecycle ---------------------------------------------------------------------
    def up(self, timeout_s: float = 180.0) -> None:
        """`docker compose up --wait`, bounded: every service running and healthy within `timeout_s`."""
        if not self.provisioned:
            self.require_running()
            return
        args = ["up", "--detach", "--wait", "--wait-timeout", str(int(timeout_s))]
        with tempfile.TemporaryFile("w+") as err:  # a file, not a pipe: nobody reads while it waits
            proc = subprocess.Popen([*self.command, *args], cwd=self.workdir, stdout=subprocess.DEVNULL,
                                    stderr=err, text=True)
            refused = self._watch_refusals(proc, deadline=time.monotonic() + timeout_s + 60)
            try:
                proc.wait(timeout=30 if refused else None)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            err.seek(0)
            stderr = err.read()
        if refused is not None:
            raise PgchaosError(f"docker compose up stopped waiting: {refused}")
        if proc.returncode != 0:
            detail = [line for line in (stderr or "").strip().splitlines() if line.strip()][-3:]
            raise PgchaosError(f"docker compose up failed: {' | '.join(detail) or 'no output'}")

    def _watch_refusals(self, proc: subprocess.Popen[str], deadline: float) -> str | None:
        """While `compose up --wait` runs: a member refused by configuration again and again
        (refusals.RefusalWatch) ends the wait (compose is stopped; the containers stay for the
        caller's teardown). Returns what was refused, or None when compose ended by itself."""
        watch = RefusalWatch()
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                raise PgchaosError("docker compose up did not end within its wait timeout")
            lines: set[str] = set()
            with contextlib.suppress(Exception):
                for service, container in self.containers().items():
                    text = container.logs(tail=60).decode(errors="replace")
                    lines |= {f"{service}: {line.strip()[:240]}" for line in text.splitlines()}
            refused = watch.see(lines)
            if refused is not None:
                proc.terminate()
                return f"refused by configuration for {watch.for_s:.0f} s and more: {refused}"
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2.0)
        return None

    def require_running(self, services: list[str] | None = None, running: bool = True) -> None:
        """Every one of `services` has a container in the project (a running one unless
        `running` is False: a fault may have stopped it, and its heal starts it again)."""
        found = self.containers()
        if not found:
            raise PgchaosError(f"--attach: no running compose project {self.project!r} on this engine")
        missing = [s for s in (services or []) if s not in found or (running and found[s].status != "running")]
        if missing:
            raise PgchaosError(f"--attach: {self.project}: service(s) not {'running' if running else 'found'}: "
                               f"{', '.join(missing)}")

    def down(self) -> None:
        """Remove what pgchaos created; an attached project is left alone."""
        if not self.provisioned:
            return
        self._compose("down", "--volumes", timeout=180)  # what it leaves, the label sweep removes
        remove_project_resources(self.docker, self.project)

    # -- containers --------------------------------------------------------------------
    def _filters(self) -> dict[str, list[str]]:
        labels = [f"{PROJECT_LABEL}={self.project}"]
        if self.provisioned:
            labels += [f"{OWNER_LABEL}=pgchaos", RUN_LABEL]
        return {"label": labels}

    def containers(self) -> dict[str, Any]:
        """Service name -> container, for this project only."""
        found = self.docker.containers.list(all=True, filters=self._filters(), ignore_removed=True)
        return {c.labels.get(SERVICE_LABEL, c.name): c for c in found}

    def container(self, service: str) -> Any:
        found = self.containers()
        if service not in found:
            raise PgchaosError(f"no service {service!r} in {self.project}; have: {', '.join(sorted(found))}")
        container = found[service]
        if not self.owns(container):
            raise PgchaosError(f"refusing to touch {container.name}: not part of {self.project}")
        return container

    def owns(self, container: Any) -> bool:
        labels = container.labels
        if labels.get(PROJECT_LABEL) != self.project:
            return False
        return is_ours(labels) or not self.provisioned

    def network(self) -> Any:
        nets = self.docker.networks.list(filters=self._filters())
        if not nets:
            raise PgchaosError(f"no network of {self.project} found")
        return nets[0]

    # -- verbs (exec, logs, kill, stop: ContainerVerbs) ---------------------------------
    def start(self, service: str) -> None:
        container = self.container(service)
        container.reload()
        if container.status == "paused":
            container.unpause()
        elif container.status != "running":
            container.start()

    def disconnect(self, service: str) -> Callable[[], None]:
        """Cut the service off the stack network; returns the reconnect."""
        container = self.container(service)
        network = self.network()
        network.disconnect(container, force=True)

        def reconnect() -> None:
            network.reload()
            if container.id not in {c.id for c in network.containers}:
                network.connect(container, aliases=[service])

        return reconnect

    def reconnect_all(self) -> None:
        """Every container of the project back on its network (heal-all)."""
        try:
            network = self.network()
        except PgchaosError:
            return
        network.reload()
        on = {c.id for c in network.containers}
        for service, container in self.containers().items():
            if container.id not in on:
                with contextlib.suppress(docker.errors.APIError):
                    network.connect(container, aliases=[service])

    def endpoint(self, service: str, port: int) -> tuple[str, int]:
        """The 127.0.0.1 address where the service's container port is published."""
        container = self.container(service)
        container.reload()
        bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{port}/tcp") or []
        for binding in bindings:
            if binding.get("HostIp") in LOOPBACK:
                return "127.0.0.1", int(binding["HostPort"])
        if container.status != "running":
            raise PgchaosError(f"{service} is not running ({container.status}): "
                               f"its port {port}/tcp has no address")
        published = ", ".join(f"{b.get('HostIp') or '*'}:{b.get('HostPort')}" for b in bindings)
        raise PgchaosError(f"{service} does not publish {port}/tcp on 127.0.0.1"
                           + (f" (only on {published})" if published else "")
                           + f'; pgchaos reaches it there: add ports: ["127.0.0.1::{port}"] to {service}')

    def run_tool(self, service: str, script: str, *args: str, timeout: float = 600.0) -> tuple[int, str]:
        """Run a script in a one-shot container of a tools-profile service."""
        cmd = [*self.command, "--profile", "tools", "run", "--rm", "-T", service, script, *args]
        try:
            proc = subprocess.run(cmd, cwd=self.workdir, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return 124, f"{script} timed out after {timeout:.0f} s"
        return proc.returncode, proc.stdout + proc.stderr


def attachable_projects(client: docker.DockerClient, services: list[str]) -> list[str]:
    """Compose projects on this engine that have a container for each of `services`
    (running or not: a killed member is still part of its stack) and at least one running."""
    seen: dict[str, set[str]] = {}
    running: set[str] = set()
    for c in client.containers.list(all=True, filters={"label": PROJECT_LABEL}, ignore_removed=True):
        seen.setdefault(c.labels[PROJECT_LABEL], set()).add(c.labels.get(SERVICE_LABEL, ""))
        if c.status == "running":
            running.add(c.labels[PROJECT_LABEL])
    return sorted(p for p, have in seen.items() if set(services) <= have and p in running)


def remove_project_resources(client: docker.DockerClient, project: str) -> None:
    """Force-remove containers, networks and volumes of one project that carry our label."""
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
