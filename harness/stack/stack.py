"""The compose stack of one run: provision, discover, exec, tear down.

A context manager over testcontainers' DockerCompose. Each run gets its own
compose project and state folder (env file, config copy, loop-mounted data
volumes); everything it creates carries the io.pgchaos.* labels, and `stop`
removes containers, networks and mounts even after a half-done start.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import docker
import docker.errors
from testcontainers.compose import DockerCompose

from harness.errors import PgchaosError
from harness.stack import images, volumes
from harness.stack.spec import APP_DB, APP_PASSWORD, APP_USER, DATA_NODES, StackSpec

STATE_ROOT = Path(os.environ.get("PGCHAOS_STATE_DIR", "/var/lib/pgchaos"))
OWNER_LABEL = "io.pgchaos.owner"
RUN_LABEL = "io.pgchaos.run"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"

Progress = Callable[[str], None]


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


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


def runs_dir() -> Path:
    return STATE_ROOT / "runs"


def check_ports_free(ports: dict[str, int]) -> None:
    for name, port in ports.items():
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                env = f"PGCHAOS_{name.upper()}_PORT"
                raise PgchaosError(
                    f"port 127.0.0.1:{port} is taken (needed for {name}); free it or set {env}"
                ) from None


class Stack:
    """One provisioned stack; `with Stack(spec) as stack:` brings it up and down."""

    def __init__(self, spec: StackSpec | None = None, run_id: str | None = None,
                 detached: bool = False, progress: Progress = print) -> None:
        self.spec = spec or StackSpec()
        self.run_id = run_id or new_run_id()
        self.project = f"pgchaos-{self.run_id}"
        self.state_dir = runs_dir() / self.run_id
        self.detached = detached
        self.progress = progress
        self.image_tag = "latest"
        self._docker: docker.DockerClient | None = None
        self._services: list[str] | None = None
        self.compose = DockerCompose(
            context=str(self.spec.compose_dir),
            compose_file_name=list(self.spec.compose_files),
            env_file=str(self.env_file),
            wait=True,
        )

    # -- paths -------------------------------------------------------------
    @property
    def env_file(self) -> Path:
        return self.state_dir / "compose.env"

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
    def docker(self) -> docker.DockerClient:
        if self._docker is None:
            self._docker = docker_client()
        return self._docker

    # -- lifecycle -----------------------------------------------------------
    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, wait_timeout: float = 180.0) -> Self:
        """Provision everything and wait for the steady state."""
        from harness.stack.steady_state import wait_for_steady_state

        self.spec.validate()
        check_ports_free(dict(self.spec.ports.__dict__))
        self.docker  # noqa: B018 - fails early with one line when no engine answers
        self.image_tag = images.ensure_images(self.spec.compose_dir, self.progress)
        self._write_state()
        self.progress(f"creating {len(DATA_NODES)} loop-mounted data volumes")
        for node in DATA_NODES:
            volumes.create(self.data_image(node), self.data_mount(node), self.spec.volume_size_mb)
        self.progress(f"docker compose up ({self.project})")
        t0 = time.monotonic()
        try:
            self.compose.start()
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-3:]
            raise PgchaosError(f"docker compose up failed: {' | '.join(detail)}") from None
        self.progress(f"containers healthy after {time.monotonic() - t0:.1f} s; checking steady state")
        state = wait_for_steady_state(self, timeout=wait_timeout)
        if not state.healthy:
            raise PgchaosError(f"stack not healthy after {wait_timeout:.0f} s: {state.summary()}")
        self.seed()
        self.progress(f"stack {self.project} up and healthy in {time.monotonic() - t0:.1f} s")
        return self

    def stop(self) -> None:
        """Remove containers, networks, volumes and loop mounts of this run."""
        if self.env_file.exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self.compose.stop(down=True)
        remove_project_resources(self.docker, self.project)
        for node in DATA_NODES:
            volumes.remove(self.data_image(node), self.data_mount(node))
        for mount in volumes.mounts_under(self.state_dir):
            volumes.unmount(mount)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def _write_state(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.config_dir.exists():
            shutil.rmtree(self.config_dir)
        shutil.copytree(self.spec.compose_dir / "config", self.config_dir)
        if self.spec.variant_dir is not None:
            shutil.copytree(self.spec.variant_dir, self.config_dir, dirs_exist_ok=True)
        env = {
            "COMPOSE_PROJECT_NAME": self.project,
            "PGCHAOS_RUN_ID": self.run_id,
            "PGCHAOS_OWNER_PID": str(os.getpid()),
            "PGCHAOS_DETACHED": "true" if self.detached else "false",
            "PGCHAOS_IMAGE_TAG": self.image_tag,
            "PGCHAOS_DATA": str(self.state_dir / "data"),
            "PGCHAOS_CONFIG": str(self.config_dir),
            "PGCHAOS_BACKUPS": str(self.backups_dir),
            **self.spec.ports.as_env(),
        }
        self.backups_dir.mkdir(exist_ok=True)
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        meta = {
            "run_id": self.run_id, "project": self.project, "owner_pid": os.getpid(),
            "detached": self.detached, "profile": self.spec.profile, "variant": self.spec.variant,
            "compose_dir": str(self.spec.compose_dir), "compose_files": list(self.spec.compose_files),
            "ports": self.spec.ports.__dict__, "image_tag": self.image_tag,
        }
        (self.state_dir / "run.json").write_text(json.dumps(meta, indent=2))

    # -- data ---------------------------------------------------------------
    def seed(self) -> None:
        """Load the sample rows once (the guide's DR checks count them)."""
        import psycopg

        sql = (self.spec.compose_dir / "sql" / "seed.sql").read_text()
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            if conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0:
                with conn.transaction():
                    conn.execute(sql)

    # -- discovery -------------------------------------------------------------
    def containers(self, all_: bool = True) -> dict[str, Any]:
        """Service name -> container, for this run's project only."""
        found = self.docker.containers.list(
            all=all_, filters={"label": [f"{PROJECT_LABEL}={self.project}", f"{OWNER_LABEL}=pgchaos"]},
            ignore_removed=True,
        )
        return {c.labels.get(SERVICE_LABEL, c.name): c for c in found}

    def services(self) -> list[str]:
        """Service names declared by the compose files (cached)."""
        if self._services is None:
            out = self.compose._run_command(cmd=[*self.compose.compose_command_property,
                                                 "config", "--services"]).stdout
            self._services = out.decode().split()
        return self._services

    def container(self, service: str) -> Any:
        found = self.containers()
        if service not in found:
            raise PgchaosError(f"no service {service!r} in {self.project}; have: {', '.join(sorted(found))}")
        return found[service]

    def published_port(self, service: str, port: int) -> int:
        container = self.container(service)
        container.reload()
        bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{port}/tcp") or []
        for binding in bindings:
            if binding.get("HostIp") in ("127.0.0.1", ""):
                return int(binding["HostPort"])
        raise PgchaosError(f"{service} does not publish {port}/tcp (is it running?)")

    def dsn(self, service: str | None = None, dbname: str = APP_DB, connect_timeout: int = 2) -> str:
        """Connection string through PgBouncer (default) or straight to one node."""
        port = self.spec.ports.pgbouncer if service is None else self.published_port(service, 5432)
        return (f"host=127.0.0.1 port={port} dbname={dbname} user={APP_USER} "
                f"password={APP_PASSWORD} connect_timeout={connect_timeout}")

    def patroni_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.published_port(service, 8008)}"

    # -- exec and logs -----------------------------------------------------------
    def exec(self, service: str, cmd: list[str], user: str | None = None,
             timeout: float = 60.0) -> tuple[int, str]:
        """Run a command in a service's container; returns (exit code, output)."""
        args = ["docker", "exec"] + (["-u", user] if user else []) + [self.container(service).id, *cmd]
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return 124, f"timed out after {timeout:.0f} s"
        return proc.returncode, proc.stdout + proc.stderr

    def run_tool(self, script: str, *args: str, timeout: float = 600.0) -> tuple[int, str]:
        """Run one of compose/scripts in a one-shot toolbox container on the stack network."""
        cmd = [*self.compose.compose_command_property, "--profile", "tools", "run", "--rm", "-T",
               "toolbox", f"/opt/pgchaos/scripts/{script}", *args]
        try:
            proc = subprocess.run(cmd, cwd=self.spec.compose_dir, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return 124, f"{script} timed out after {timeout:.0f} s"
        return proc.returncode, proc.stdout + proc.stderr

    def destroy(self) -> None:
        """Complete cluster loss: every container, network and data volume goes;
        the run's state (config, backups) stays for the redeploy."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self.compose.stop(down=True)
        remove_project_resources(self.docker, self.project)
        for node in DATA_NODES:
            volumes.remove(self.data_image(node), self.data_mount(node))

    def redeploy(self, wait_timeout: float = 180.0) -> None:
        """Deploy a new cluster into this run's state (the guide's `docker stack deploy`)."""
        from harness.stack.steady_state import wait_for_steady_state

        for node in DATA_NODES:
            volumes.create(self.data_image(node), self.data_mount(node), self.spec.volume_size_mb)
        try:
            self.compose.start()
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-3:]
            raise PgchaosError(f"docker compose up failed: {' | '.join(detail)}") from None
        state = wait_for_steady_state(self, timeout=wait_timeout)
        if not state.healthy:
            raise PgchaosError(f"redeployed stack not healthy: {state.summary()}")

    def logs(self, service: str, tail: int | None = None) -> str:
        raw = self.container(service).logs(tail=tail if tail is not None else "all")
        return raw.decode(errors="replace")

    def patronictl_list(self) -> str:
        for service in ("coordinator-1", "coordinator-2", "coordinator-3"):
            try:
                rc, out = self.exec(service, ["patronictl", "-c", "/etc/patroni/patroni.yml", "list"],
                                    user="postgres", timeout=20)
            except PgchaosError:
                continue
            if rc == 0:
                return out
        return "patronictl list: no coordinator answered"

    @classmethod
    def attach(cls, run_id: str | None = None, progress: Progress = print) -> Stack:
        """The stack of an earlier `pgchaos up` (the newest when run_id is None)."""
        metas = sorted(runs_dir().glob("*/run.json")) if runs_dir().exists() else []
        if run_id is not None:
            metas = [m for m in metas if m.parent.name == run_id]
        if not metas:
            raise PgchaosError("no pgchaos stack is up (start one with: pgchaos up)")
        try:
            meta = json.loads(metas[-1].read_text())
            meta["run_id"], meta["profile"]  # noqa: B018 - the fields attach needs
        except (ValueError, KeyError) as exc:
            raise PgchaosError(f"{metas[-1]}: corrupt run.json ({exc}); remove it with `pgchaos gc`") from None
        spec = StackSpec(profile=meta["profile"], compose_dir=Path(meta["compose_dir"]),
                         compose_files=tuple(meta["compose_files"]), variant=meta["variant"])
        stack = cls(spec, run_id=meta["run_id"], detached=meta["detached"], progress=progress)
        stack.image_tag = meta["image_tag"]
        return stack


def remove_project_resources(client: docker.DockerClient, project: str) -> None:
    """Force-remove containers and networks of one project that carry our label."""
    filters = {"label": [f"{PROJECT_LABEL}={project}", f"{OWNER_LABEL}=pgchaos"]}
    for container in client.containers.list(all=True, filters=filters, ignore_removed=True):
        with contextlib.suppress(docker.errors.APIError):  # gone, or already being removed
            container.remove(force=True, v=True)
    for network in client.networks.list(filters=filters):
        with contextlib.suppress(docker.errors.APIError):
            network.remove()
    for volume in client.volumes.list(filters=filters):
        with contextlib.suppress(docker.errors.APIError):
            volume.remove(force=True)
