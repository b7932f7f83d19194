"""The compose engine: a compose project pgchaos provisions, or one it attaches to.

Provision: the user's compose files plus a generated override that adds our
ownership labels, `docker compose up --wait` (watching for refusals by
configuration). Attach: a compose project that is already running; pgchaos
owns nothing in it but the faults it injects.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import docker
import docker.errors
from testcontainers.compose import DockerCompose

from harness.engines.base import (
    LOOPBACK,
    OWNER_LABEL,
    PROJECT_LABEL,
    RUN_LABEL,
    SERVICE_LABEL,
    ContainerVerbs,
    EngineContext,
    docker_client,
    ensure_running,
    is_ours,
    reconnect,
    remove_project_resources,
)
from harness.errors import PgchaosError
from harness.stack.refusals import RefusalWatch


class ComposeDeployment(ContainerVerbs):
    """A compose project: provisioned by pgchaos, or attached to."""

    name: ClassVar[str] = "compose"
    description: ClassVar[str] = "docker compose (the default)"
    can_attach: ClassVar[bool] = True

    def __init__(self, project: str, workdir: Path, compose_files: list[str],
                 env_files: list[Path] | None = None, provisioned: bool = True,
                 progress: Callable[[str], None] = print) -> None:
        """`env_files` in order, a later file's variable winning (compose's `--env-file`
        given several times): the stack's own `.env` and env files, then pgchaos's."""
        self.project = project
        self.progress = progress
        self.workdir = workdir
        self.compose_files = compose_files
        self.env_files = list(env_files or [])
        self.provisioned = provisioned
        self._docker: docker.DockerClient | None = None
        self._services: list[str] | None = None
        self.compose = DockerCompose(context=str(workdir), compose_file_name=list(compose_files),
                                     env_file=[str(f) for f in self.env_files] or None, wait=True)

    @classmethod
    def capabilities(cls, caps: dict[str, int]) -> dict[str, int]:
        """The manifest's, plus cutting a member off the stack network ("partition":
        `docker network disconnect`, which a Swarm task cannot be given) and, with a spare
        group, starting its services on demand ("spare-services": its compose profile; on
        Swarm the spare is a task of a scaled service, see the citus_swarm scenarios)."""
        extra = {"partition": 1, **({"spare-services": 1} if caps.get("spare-groups") else {})}
        return {**caps, **extra}

    @classmethod
    def create(cls, ctx: EngineContext) -> ComposeDeployment:
        """Provision: project `pgchaos-RUN`, the user's files plus our ownership override, the
        stack's own env files under pgchaos's. Attach: the named project (or the one found)."""
        user_env = ctx.manifest.user_env_files()
        files = list(ctx.manifest.compose_files)
        if ctx.provisioned:
            return cls(f"pgchaos-{ctx.run_id}", ctx.manifest.dir, [*files, str(ctx.override_file)],
                       env_files=[*user_env, ctx.env_file], progress=ctx.progress)
        return cls(ctx.attach or "", ctx.manifest.dir, files, env_files=user_env, provisioned=False,
                   progress=ctx.progress)

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

    def engine_images(self) -> dict[str, Path]:
        """None of its own: the stack's images are pgchaos's (or the user's)."""
        return {}

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
        self.progress(f"docker compose up ({self.project})")
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

    def find(self, services: list[str], all_running: bool = True) -> None:
        """Attach: the project that has every one of `services` (the one named, else the only
        one on this engine); some may be down when `all_running` is False (a fault stopped them)."""
        if not self.project:
            found = attachable_projects(self.docker, services)
            if len(found) != 1:
                raise PgchaosError(
                    f"--attach: {'no running compose project has' if not found else 'several projects have'} "
                    f"the manifest's services ({', '.join(services)})"
                    + (f": {', '.join(found)}; name one with --attach PROJECT" if found else ""))
            self.project = found[0]
        self.require_running(services, running=all_running)

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
    def _filters(self, service: str | None = None) -> dict[str, list[str]]:
        labels = [f"{PROJECT_LABEL}={self.project}"]
        if self.provisioned:
            labels += [f"{OWNER_LABEL}=pgchaos", RUN_LABEL]
        if service is not None:
            labels.append(f"{SERVICE_LABEL}={service}")
        return {"label": labels}

    def containers(self) -> dict[str, Any]:
        """Service name -> container, for this project only."""
        return self._listed()

    def _listed(self, service: str | None = None) -> dict[str, Any]:
        """Service name -> container of the project (only `service`'s when named: docker-py
        inspects every container it lists, so a lookup of one lists one)."""
        found = self.docker.containers.list(all=True, filters=self._filters(service), ignore_removed=True)
        return {c.labels.get(SERVICE_LABEL, c.name): c for c in found}

    def container(self, service: str) -> Any:
        found = self._listed(service)
        if service not in found:
            have = self.containers()
            raise PgchaosError(f"no service {service!r} in {self.project}; have: {', '.join(sorted(have))}")
        return self.refuse_unless_owned(found[service])

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
    def disconnect(self, service: str) -> None:
        """Cut the service off the stack network (a partition); `reconnect` undoes it."""
        self.network().disconnect(self.container(service), force=True)

    def reconnect(self, service: str) -> None:
        """The service back on the stack network under its name, unless it is on it."""
        reconnect(self.network(), self.container(service), service)

    def networks_of(self, service: str) -> tuple[str, list[str]]:
        container = self.container(service)
        container.reload()
        return self.network().name, sorted((container.attrs.get("NetworkSettings") or {}).get("Networks") or {})

    def heal_all(self, services: Sequence[str] | None = None) -> None:
        """Every container of the project (or of `services`) running and on the stack network."""
        network = None
        with contextlib.suppress(PgchaosError):
            network = self.network()
        chosen = {service: container for service, container in self.containers().items()
                  if services is None or service in services}
        for container in chosen.values():
            ensure_running(container)
        if network is not None:
            network.reload()  # once: who is on it, after the starts above
            for service, container in chosen.items():
                reconnect(network, container, service, reload=False)

    @classmethod
    def collect(cls, everything: bool, progress: Callable[[str], None]) -> list[str]:
        """Compose projects are collected by their labels in `harness.stack.gc` (every engine
        leaves labelled containers, networks and volumes); nothing of compose's own."""
        return []

    def endpoint(self, service: str, port: int) -> tuple[str, int]:
        """The 127.0.0.1 address where the service's container port is published."""
        container = self.container(service)  # listed just now: inspected, no reload needed
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

    def start_services(self, services: list[str], profile: str | None = None) -> None:
        """`docker compose [--profile P] up -d --no-deps SERVICES` on the running project."""
        proc = self._compose(*(["--profile", profile] if profile else []), "up", "-d", "--no-deps", *services,
                             timeout=180)
        if proc.returncode != 0:
            raise PgchaosError(f"docker compose up {' '.join(services)}: {proc.stderr.strip()[-400:]}")

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
