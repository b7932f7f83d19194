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
import secrets
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import docker

from harness.errors import PgchaosError
from harness.stack import images, volumes
from harness.stack import spec as spec_module
from harness.stack.deployment import (
    OWNER_LABEL,
    PROJECT_LABEL,
    RUN_LABEL,
    SERVICE_LABEL,
    ComposeDeployment,
    attachable_projects,
    docker_client,
    ownership_labels,
    remove_project_resources,
)
from harness.stack.manifest import Manifest, check_against_services, unmet
from harness.stack.spec import Ports, StackSpec

__all__ = ["OWNER_LABEL", "PROJECT_LABEL", "RUN_LABEL", "SERVICE_LABEL", "Stack", "docker_client",
           "remove_project_resources", "runs_dir"]

STATE_ROOT = Path(os.environ.get("PGCHAOS_STATE_DIR", "/var/lib/pgchaos"))

Progress = Callable[[str], None]


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def state_root() -> Path:
    """The state folder ($PGCHAOS_STATE_DIR, default /var/lib/pgchaos)."""
    return STATE_ROOT


def runs_dir() -> Path:
    return STATE_ROOT / "runs"


def caller() -> dict[str, Any]:
    """Who starts a stack: the user and the folder `pgchaos up` ran in. "The current
    stack" of a command without --run-id is the caller's own, never someone else's."""
    try:
        cwd = str(Path.cwd())
    except OSError:  # the folder was removed under us
        cwd = ""
    return {"owner_uid": os.getuid(), "owner_cwd": cwd}


def is_callers(meta: dict[str, Any]) -> bool:
    me = caller()
    return meta.get("owner_uid") == me["owner_uid"] and meta.get("owner_cwd") == me["owner_cwd"]


def run_metas() -> list[tuple[Path, dict[str, Any] | None]]:
    """Every run.json of the state folder, oldest first, with its content (None: unreadable)."""
    out: list[tuple[Path, dict[str, Any] | None]] = []
    for path in sorted(runs_dir().glob("*/run.json")) if runs_dir().exists() else []:
        try:
            meta = json.loads(path.read_text())
            out.append((path, meta if isinstance(meta, dict) else None))
        except (OSError, ValueError):
            out.append((path, None))
    return out


def own_runs() -> list[str]:
    """Run ids of the caller's stacks (same user, same folder), oldest first."""
    return [path.parent.name for path, meta in run_metas() if meta is not None and is_callers(meta)]


def describe_run(meta: dict[str, Any] | None, run_id: str) -> str:
    """One line about a run for machine-wide listings: id, project, owner, folder, manifest."""
    if meta is None:
        return f"{run_id}: unreadable run.json (remove it with `pgchaos gc`)"
    uid = meta.get("owner_uid")
    owner = "?" if uid is None else ("you" if uid == os.getuid() else f"uid {uid}")
    return (f"{run_id}: project {meta.get('project', '?')}, started by {owner} in "
            f"{meta.get('owner_cwd') or '?'}, manifest {meta.get('manifest') or '?'}")


def attached_state_dir(project: str) -> Path:
    """Where the game-day faults injected into an attached project are remembered."""
    return STATE_ROOT / "attached" / project


def check_ports_free(published: list[tuple[str, str, int]], port_variables: bool = False) -> None:
    """Every fixed host port of the compose model is free and on 127.0.0.1. With
    `port_variables` (the reference stack's compose files read PGCHAOS_<NAME>_PORT),
    the hint names them; a user's compose file reads its own variables, if any."""
    for service, host_ip, port in published:
        if host_ip != "127.0.0.1":
            raise PgchaosError(
                f"{service} publishes a port on {host_ip or 'every interface'}: pgchaos provisions only "
                "stacks whose ports are published on 127.0.0.1 (write \"127.0.0.1:HOST:CONTAINER\")")
        if port == 0:
            continue
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                how = ("set the PGCHAOS_<NAME>_PORT variable the compose file reads" if port_variables else
                       "publish another port in the compose file (or \"127.0.0.1::CONTAINER\": any free port)")
                raise PgchaosError(f"port 127.0.0.1:{port} is taken (needed for {service}); free it, or {how}") \
                    from None


def mode_capabilities(manifest: Manifest, attached: bool, engine: str = "compose") -> dict[str, int]:
    """The manifest's capabilities in a mode: an attached stack is not ours, so it has
    no loop volumes to fill and no one-shot tools run in the user's project. The
    swarm engine adds "swarm" (and has no one-shot tools)."""
    caps = manifest.capabilities()
    if attached:
        caps.pop("loop-volumes", None)
        caps.pop("tools", None)
    if engine.startswith("swarm"):
        caps.pop("tools", None)
        caps["swarm"] = 1
    if engine == "swarm-nodes":  # several hosts: node faults
        caps["swarm-nodes"] = 1
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
        if self.attached:
            self.project = self.spec.attach or ""
            files = list(self.manifest.compose_files)
        else:
            self.project = f"pgchaos-{self.run_id}"
            files = [*self.manifest.compose_files, str(self.override_file)]
        self.deployment: Any
        if self.spec.engine == "swarm-nodes":  # a swarm of several hosts (harness/engines/swarm_nodes)
            from harness.engines.swarm_nodes.deployment import SwarmNodesDeployment
            from harness.stack.swarm import DEFAULT_STACK

            self.project = self.spec.stack_name or os.environ.get("PGCHAOS_SWARM_STACK") or DEFAULT_STACK
            self.deployment = SwarmNodesDeployment(
                self.project, self.manifest.dir, self.manifest, self.spec.ports, env_file=self.env_file,
                override_file=self.override_file, state_dir=self.state_dir, progress=progress)
        elif self.spec.engine == "swarm":
            from harness.stack.swarm import DEFAULT_STACK, SwarmDeployment

            self.project = self.spec.stack_name or os.environ.get("PGCHAOS_SWARM_STACK") or DEFAULT_STACK
            self.deployment = SwarmDeployment(
                self.project, self.manifest.dir, self.manifest, self.spec.ports, env_file=self.env_file,
                override_file=self.override_file, state_dir=self.state_dir, progress=progress)
        else:
            user_env = self.manifest.user_env_files()  # the stack's own variables; pgchaos's layered on top
            self.deployment = ComposeDeployment(
                self.project, self.manifest.dir, files,
                env_files=user_env if self.attached else [*user_env, self.env_file], provisioned=not self.attached)

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
        if not self.project:
            found = attachable_projects(self.docker, services)
            if len(found) != 1:
                raise PgchaosError(
                    f"--attach: {'no running compose project has' if not found else 'several projects have'} "
                    f"the manifest's services ({', '.join(services)})"
                    + (f": {', '.join(found)}; name one with --attach PROJECT" if found else ""))
            self.project = self.deployment.project = found[0]
        self.deployment.require_running(services, running=all_running)
        check_against_services(self.manifest, sorted(self.deployment.containers()))
        self.check_patroni_answers(partial=not all_running)
        self.state_dir = attached_state_dir(self.project)  # its game-day faults, shared by every call
        self.progress(f"attached to compose project {self.project}")

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
        """What can be checked before any engine work: the run's state folder, every
        manifest service in the compose files, host ports free and on 127.0.0.1."""
        if self.manifest.images == "citus":
            images.citus_source()  # one line saying what to provide when there is no Citus package or image
        self._write_state()
        try:
            check_against_services(self.manifest, self.deployment.services(every_profile=True))
            check_ports_free(self.deployment.published_ports(), port_variables=self.reads_port_variables())
        finally:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            for empty in (runs_dir(), STATE_ROOT):  # leave no trace of a check
                with contextlib.suppress(OSError):
                    empty.rmdir()

    def reads_port_variables(self) -> bool:
        """The compose files take host ports from PGCHAOS_<NAME>_PORT (the reference stack's do)."""
        import re

        return any(re.search(r"PGCHAOS_[A-Z_]+_PORT", (self.manifest.dir / f).read_text(errors="replace"))
                   for f in self.manifest.compose_files)

    def _provision(self) -> None:
        self.preflight()
        self._write_state()
        self.docker  # noqa: B018 - fails early with one line when no engine answers
        if self.manifest.images in ("reference", "citus"):
            self.image_tag = images.ensure_images(spec_module.COMPOSE_DIR, self.progress)
        if self.manifest.images == "citus":
            self.citus_image = images.ensure_citus_image(self.manifest.dir, self.image_tag, self.progress)
        self._write_env()
        self.deployment.write_owner_override(
            self.override_file, ownership_labels(self.run_id, os.getpid(), self.detached, str(state_root())))
        self._write_meta()
        if self.loop_members:
            self.progress(f"creating {len(self.loop_members)} loop-mounted data volumes")
        for node in self.loop_members:
            volumes.create(self.data_image(node), self.data_mount(node), self.manifest.volume_size_mb)
        if not self.spec.engine.startswith("swarm"):  # the swarm engines say `docker stack deploy` themselves
            self.progress(f"docker compose up ({self.project})")
        try:
            self.deployment.up(timeout_s=self.up_timeout_s)
        except PgchaosError as exc:
            raise PgchaosError(f"{exc}; {self.why_unhealthy()}") from None

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

    def _write_state(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.config_dir.exists():
            shutil.rmtree(self.config_dir)
        if self.manifest.config_dir is not None:
            shutil.copytree(self.manifest.dir / self.manifest.config_dir, self.config_dir)
        else:
            self.config_dir.mkdir()
        if self.spec.variant_dir is not None:
            shutil.copytree(self.spec.variant_dir, self.config_dir, dirs_exist_ok=True)
        self.backups_dir.mkdir(exist_ok=True)
        self.override_file.write_text("{}\n")  # the ownership labels come once the model is known
        self._write_env()

    def _write_env(self) -> None:
        env = {
            "COMPOSE_PROJECT_NAME": self.project,
            "PGCHAOS_RUN_ID": self.run_id,
            "PGCHAOS_OWNER_PID": str(os.getpid()),
            "PGCHAOS_DETACHED": "true" if self.detached else "false",
            "PGCHAOS_IMAGE_TAG": self.image_tag,
            **({"PGCHAOS_CITUS_IMAGE": self.citus_image} if self.citus_image else {}),
            "PGCHAOS_DATA": str(self.state_dir / "data"),
            "PGCHAOS_CONFIG": str(self.config_dir),
            "PGCHAOS_BACKUPS": str(self.backups_dir),
            **self.spec.ports.as_env(),
        }
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))

    def _write_meta(self) -> None:
        meta = {
            "run_id": self.run_id, "project": self.project, "owner_pid": os.getpid(),
            "detached": self.detached, "profile": self.spec.profile, "variant": self.spec.variant,
            "manifest": str(self.manifest.path), "compose_dir": str(self.manifest.dir),
            "compose_files": list(self.manifest.compose_files),
            "ports": self.spec.ports.__dict__, "image_tag": self.image_tag,
            "engine": self.spec.engine, **caller(),
        }
        (self.state_dir / "run.json").write_text(json.dumps(meta, indent=2))

    # -- data ---------------------------------------------------------------
    def prepare(self) -> None:
        """The load's own schema, and the guide's sample rows on a stack that has the guide's tables."""
        from harness.load.schema import create_load_schema

        if self.manifest.schema_sql:
            self.run_schema_sql(self.manifest.dir / self.manifest.schema_sql)
        setup = self.manifest.load_setup_sql
        self._settling(lambda: create_load_schema(self.dsn(via="router"),
                                                  self.manifest.dir / setup if setup else None))
        if "guide-schema" in self.capabilities():
            self._settling(self.seed)

    def _settling(self, step: Callable[[], None], timeout_s: float = 60.0) -> None:
        """Run an idempotent set-up step, again while connections still break or land on a
        read-only member (a router or pooler task that has just come up may drop its first
        server connections, or hold one to a member that is no longer the leader)."""
        import psycopg

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                step()
                return
            except (psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction) as exc:
                if time.monotonic() > deadline:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise PgchaosError(f"stack set-up failed for {timeout_s:.0f} s: {first}") from exc
                time.sleep(1.0)

    def run_schema_sql(self, path: Path, timeout_s: float = 120.0) -> None:
        """The stack's own schema (idempotent), retried while the formation settles
        (Citus: until Patroni has registered every worker group's primary)."""
        import psycopg

        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.dsn(via="router", connect_timeout=3), autocommit=True) as conn:
                    if self.manifest.capabilities().get("citus"):
                        groups = conn.execute("SELECT count(DISTINCT groupid) FROM pg_dist_node "
                                              "WHERE noderole = 'primary' AND isactive AND groupid > 0"
                                              ).fetchone()[0]
                        if groups < len(self.manifest.worker_groups):
                            last = f"{groups}/{len(self.manifest.worker_groups)} worker groups in pg_dist_node"
                            time.sleep(1.0)
                            continue
                    with conn.transaction():
                        conn.execute(path.read_text())
                return
            except psycopg.Error as exc:
                last = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                time.sleep(1.0)
        raise PgchaosError(f"{path.name} could not be applied in {timeout_s:.0f} s: {last}")

    def drop_load_schema(self) -> None:
        from harness.load.schema import drop_load_schema

        drop_load_schema(self.dsn(via="router"))

    def seed(self) -> None:
        """Load the guide's sample rows once (its DR checks count them)."""
        import psycopg

        sql = (self.manifest.dir / "sql" / "seed.sql").read_text()
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            if conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0:
                with conn.transaction():
                    conn.execute(sql)

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
                         engine=meta.get("engine", "compose"),
                         stack_name=meta["project"] if str(meta.get("engine")).startswith("swarm") else None)
        stack = cls(spec, run_id=meta["run_id"], detached=meta["detached"], progress=progress)
        stack.image_tag = meta["image_tag"]
        return stack
