"""The stack of one run: provision (or attach), discover, exec, tear down.

What the stack is made of comes from its manifest (harness/stack/manifest.py);
how its services run comes from a Deployment (compose today). Each
provisioned run gets its own compose project and state folder (env file,
config copy, ownership override, loop-mounted data volumes); everything it
creates carries the io.pgchaos.* labels, and `stop` removes containers,
networks and mounts even after a half-done start. An attached stack is never
removed or restarted except as a scenario's fault.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import docker

from harness import engines
from harness.engines.base import (
    OWNER_LABEL,
    PROJECT_LABEL,
    RUN_LABEL,
    SERVICE_LABEL,
    Deployment,
    EngineContext,
    docker_client,
    remove_project_resources,
)
from harness.errors import PgchaosError
from harness.stack import data, provision, volumes
from harness.stack.manifest import Manifest, check_against_services, unmet
from harness.stack.runs import (
    attached_state_dir,
    is_callers,
    new_run_id,
    own_runs,
    run_metas,
    runs_dir,
)
from harness.stack.spec import Ports, StackSpec

__all__ = ["OWNER_LABEL", "PROJECT_LABEL", "RUN_LABEL", "SERVICE_LABEL", "Stack", "docker_client",
           "own_runs", "remove_project_resources", "runs_dir"]

Progress = Callable[[str], None]


def mode_capabilities(manifest: Manifest, attached: bool, engine: str = engines.DEFAULT_ENGINE) -> dict[str, int]:
    """The manifest's capabilities in a mode and on an engine: an attached stack is not
    ours, so it has no loop volumes to fill and no one-shot tools run in the user's
    project; the engine then says what it serves (e.g. Swarm: no tools, "swarm")."""
    caps = manifest.capabilities()
    if attached:
        caps.pop("loop-volumes", None)
        caps.pop("tools", None)
    eng = engines.engine(engine)
    caps = eng.capabilities(caps)
    for name in getattr(eng, "provisioned_only", ()) if attached else ():  # e.g. a host pgchaos runs
        caps.pop(name, None)
    return caps


class Stack:
    """One stack; `with Stack(spec) as stack:` brings it up and down (or attaches)."""

    def __init__(self, spec: StackSpec | None = None, run_id: str | None = None,
                 detached: bool = False, progress: Progress = print) -> None:
        self.spec = spec or StackSpec()
        self.manifest: Manifest = self.spec.validate()
        self.run_id = run_id or new_run_id()
        self.attached = self.spec.attach is not None
        self.state_dir = runs_dir() / self.run_id
        self.detached = detached
        self.progress = progress
        self.image_tag = "latest"
        self.citus_image = ""
        self.up_timeout_s = float(os.environ.get("PGCHAOS_UP_TIMEOUT", "180"))
        self._docker: docker.DockerClient | None = None
        self.deployment: Deployment = engines.engine(self.spec.engine).create(EngineContext(
            run_id=self.run_id, manifest=self.manifest, ports=self.spec.ports, state_dir=self.state_dir,
            env_file=self.env_file, override_file=self.override_file, attach=self.spec.attach,
            stack_name=self.spec.stack_name, progress=progress))
        self.project = self.deployment.project

    # -- paths -------------------------------------------------------------
    @property
    def env_file(self) -> Path:
        return self.state_dir / "compose.env"

    @property
    def override_file(self) -> Path:
        return self.state_dir / "pgchaos-owner.override.yml"

    @property
    def backups_dir(self) -> Path:
        return self.state_dir / "backups"

    @property
    def config_dir(self) -> Path:
        return self.state_dir / "config"

    def data_image(self, node: str) -> Path:
        return self.state_dir / "volumes" / f"{node}.ext4"

    def data_mount(self, node: str) -> Path:
        return self.state_dir / "data" / node

    @property
    def loop_members(self) -> list[str]:
        """Members whose data sit on loop-mounted volumes of this run."""
        return [] if self.attached or not self.manifest.loop_volumes else self.manifest.data_members

    @property
    def docker(self) -> docker.DockerClient:
        if self._docker is None:
            self._docker = docker_client()
        return self._docker

    def capabilities(self) -> dict[str, int]:
        return mode_capabilities(self.manifest, self.attached, self.spec.engine)

    def missing(self, requirements: list[str] | tuple[str, ...]) -> list[str]:
        """Requirements of a scenario that this stack (in this mode) does not meet."""
        return unmet(requirements, self.capabilities())

    # -- lifecycle -----------------------------------------------------------
    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, wait_timeout: float | None = None) -> Self:
        """Provision (or attach), wait for the steady state (up to PGCHAOS_UP_TIMEOUT,
        180 s by default), create the load's schema."""
        from harness.stack.steady_state import wait_for_steady_state

        t0 = time.monotonic()
        if self.attached:
            self.docker  # noqa: B018 - fails early with one line when no engine answers
            self._attach()
        else:
            self._provision()
        self.progress(f"containers up after {time.monotonic() - t0:.1f} s; checking steady state")
        wait_timeout = self.up_timeout_s if wait_timeout is None else wait_timeout
        state = wait_for_steady_state(self, timeout=wait_timeout)
        if not state.healthy:
            raise PgchaosError(f"stack not healthy after {wait_timeout:.0f} s: {state.summary()}")
        self.prepare()
        self.progress(f"stack {self.project} {'attached' if self.attached else 'up'} and healthy "
                      f"in {time.monotonic() - t0:.1f} s")
        return self

    def connect(self) -> Self:
        """Find an attached stack's project and check its services exist (no waiting, no
        changes). Some may be down: a fault injected earlier stops them, and its heal
        (or `status`, which shows them) must still find the stack."""
        self.docker  # noqa: B018 - one line when no engine answers
        if self.attached:
            self._attach(all_running=False)
        return self

    def _attach(self, all_running: bool = True) -> None:
        services = self.manifest.services()
        self.deployment.find(services, all_running=all_running)
        self.project = self.deployment.project
        check_against_services(self.manifest, sorted(self.deployment.containers()))
        self.check_patroni_answers(partial=not all_running)
        self.state_dir = attached_state_dir(self.project)  # its game-day faults, shared by every call
        self.progress(f"attached to {self.project}")

    def check_patroni_answers(self, timeout: float = 3.0, partial: bool = False) -> None:
        """Every Patroni member's REST API answers on its published port. With
        `partial` (a stack a fault may have left partly down, or a member its heal
        is starting), one answering member per group is enough."""
        import requests

        for group in self.manifest.patroni_groups:
            failures = []
            for member in group.members:
                try:
                    requests.get(f"{self.patroni_url(member)}/patroni", timeout=timeout).raise_for_status()
                except (requests.RequestException, PgchaosError) as exc:
                    why = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
                    failures.append(f"{member}: Patroni REST API (port {group.rest_port}) does not answer: {why}")
                    if not partial:
                        break
            if failures and (not partial or len(failures) == len(group.members)):
                raise PgchaosError(failures[0])

    def preflight(self) -> None:
        """What can be checked before any engine work (bad input: one line, nothing created)."""
        provision.preflight(self)

    def _provision(self) -> None:
        provision.provision(self)

    def why_unhealthy(self) -> str:
        """The daily health check's failing checks, with the log lines that say why."""
        from harness.stack.steady_state import steady_state

        try:
            return steady_state(self).summary()
        except Exception as exc:  # the check itself could not run: say so, keep the first error
            return f"health check could not run: {type(exc).__name__}: {exc}"

    def stop(self) -> None:
        """Provisioned: remove containers, networks, volumes and loop mounts of this run.
        Attached: drop the load's schema, leave everything else as found."""
        if self.attached:
            with contextlib.suppress(Exception):
                self.drop_load_schema()
            return
        if (self.state_dir / "run.json").exists():  # got as far as the engine
            self.deployment.down()
            remove_project_resources(self.docker, self.project)
        for node in self.manifest.data_members:
            volumes.remove(self.data_image(node), self.data_mount(node))
        for mount in volumes.mounts_under(self.state_dir):
            volumes.unmount(mount)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- data ---------------------------------------------------------------
    def prepare(self) -> None:
        """The load's own schema, and the guide's sample rows where the stack has the guide's tables."""
        data.prepare(self)

    def drop_load_schema(self) -> None:
        data.drop_load_schema(self)

    # -- discovery -------------------------------------------------------------
    def containers(self, all_: bool = True) -> dict[str, Any]:
        """Service name -> container, for this run's project only."""
        return self.deployment.containers()

    def services(self) -> list[str]:
        """Service names declared by the compose files."""
        return self.deployment.services()

    def container(self, service: str) -> Any:
        return self.deployment.container(service)

    def published_port(self, service: str, port: int) -> int:
        return self.deployment.endpoint(service, port)[1]

    def endpoint(self, service: str, port: int) -> str:
        host, host_port = self.deployment.endpoint(service, port)
        return f"{host}:{host_port}"

    @property
    def database(self) -> str:
        return self.manifest.database.name

    def dsn(self, service: str | None = None, dbname: str | None = None, connect_timeout: int = 2,
            via: str = "pooler") -> str:
        """Connection string through the pooler (the router when there is none, or
        `via="router"`), or straight to one member with `service`."""
        user, password = self.manifest.database.credentials()
        if service is not None:
            group = self.manifest.group_of(service)
            port = self.published_port(service, group.pg_port if group else 5432)
        elif via == "pooler" and self.manifest.pooler is not None:
            port = self.published_port(self.manifest.pooler.service, self.manifest.pooler.port)
        else:
            port = self.published_port(self.manifest.router.service, self.manifest.router.primary_port)
        return (f"host=127.0.0.1 port={port} dbname={dbname or self.database} user={user} "
                f"password={password} connect_timeout={connect_timeout}")

    def patroni_url(self, service: str) -> str:
        group = self.manifest.group_of(service)
        return f"http://127.0.0.1:{self.published_port(service, group.rest_port if group else 8008)}"

    # -- exec and logs -----------------------------------------------------------
    def exec(self, service: str, cmd: list[str], user: str | None = None,
             timeout: float = 60.0) -> tuple[int, str]:
        """Run a command in a service's container; returns (exit code, output)."""
        return self.deployment.exec(service, cmd, user=user, timeout=timeout)

    def run_tool(self, script: str, *args: str, timeout: float = 600.0) -> tuple[int, str]:
        """Run one of the stack's scripts in its one-shot tools container on the stack network."""
        if self.manifest.tools_service is None or self.attached:
            raise PgchaosError("this stack has no tools service (manifest stack.tools_service)")
        return self.deployment.run_tool(self.manifest.tools_service, f"/opt/pgchaos/scripts/{script}",
                                        *args, timeout=timeout)

    def destroy(self) -> None:
        """Complete cluster loss: every container, network and data volume goes;
        the run's state (config, backups) stays for the redeploy."""
        if self.attached:
            raise PgchaosError("refusing to destroy a stack pgchaos attached to")
        self.deployment.down()
        for node in self.manifest.data_members:
            volumes.remove(self.data_image(node), self.data_mount(node))

    def redeploy(self, wait_timeout: float = 180.0) -> None:
        """Deploy a new cluster into this run's state (the guide's `docker stack deploy`)."""
        from harness.stack.steady_state import wait_for_steady_state

        for node in self.loop_members:
            volumes.create(self.data_image(node), self.data_mount(node), self.manifest.volume_size_mb)
        self.deployment.up()
        wait_timeout = self.up_timeout_s if wait_timeout is None else wait_timeout
        state = wait_for_steady_state(self, timeout=wait_timeout)
        if not state.healthy:
            raise PgchaosError(f"redeployed stack not healthy: {state.summary()}")

    def logs(self, service: str, tail: int | None = None) -> str:
        return self.deployment.logs(service, tail=tail)

    def patronictl_list(self) -> str:
        """`patronictl list` of every Patroni group, from the first member that answers."""
        outs = []
        for group in self.manifest.patroni_groups:
            for service in group.members:
                try:
                    rc, out = self.exec(service, ["patronictl", "-c", group.patroni_config, "list"],
                                        user="postgres", timeout=20)
                except PgchaosError:
                    continue
                if rc == 0:
                    outs.append(out)
                    break
            else:
                outs.append(f"patronictl list: no member of {group.name} answered")
        return "\n".join(outs)

    @classmethod
    def attach(cls, run_id: str | None = None, progress: Progress = print) -> Stack:
        """The stack of an earlier `pgchaos up`: the one named, else the caller's newest
        (same user, same folder); another user's or folder's stack only when named."""
        found = run_metas()
        if run_id is not None:
            metas = [p for p, _ in found if p.parent.name == run_id]
            if not metas:
                raise PgchaosError(f"no pgchaos stack {run_id!r} is up"
                                   + (f"; up: {', '.join(p.parent.name for p, _ in found)}" if found else ""))
        else:
            metas = [p for p, meta in found if meta is not None and is_callers(meta)]
            corrupt = [p for p, meta in found if meta is None]
            if not metas and corrupt:
                raise PgchaosError(f"{corrupt[-1]}: corrupt run.json; remove it with `pgchaos gc`")
            if not metas:
                others = f"; {len(found)} other stack(s) on this machine (`pgchaos status --all`; " \
                         "name one with --run-id)" if found else ""
                raise PgchaosError(f"no pgchaos stack is up from this folder (start one with: pgchaos up){others}")
        try:
            meta = json.loads(metas[-1].read_text())
            meta["run_id"], meta["profile"], meta["compose_dir"]  # noqa: B018 - the fields attach needs
            ports = Ports(**{k: int(v) for k, v in (meta.get("ports") or {}).items()})
        except (ValueError, KeyError, TypeError) as exc:
            raise PgchaosError(f"{metas[-1]}: corrupt run.json ({exc}); remove it with `pgchaos gc`") from None
        manifest = Path(meta["manifest"]) if meta.get("manifest") else None
        spec = StackSpec(profile=meta["profile"], compose_dir=Path(meta["compose_dir"]),
                         manifest_path=manifest, variant=meta["variant"], ports=ports,
                         engine=meta.get("engine", engines.DEFAULT_ENGINE), stack_name=meta["project"])
        stack = cls(spec, run_id=meta["run_id"], detached=meta["detached"], progress=progress)
        stack.image_tag = meta["image_tag"]
        return stack
