"""The Docker Swarm engine: the guide's `docker stack deploy -c ... postgres-mesh`.

A `SwarmDeployment` runs the stack file that lives beside the compose file
(`docker-stack.yml`) as one Swarm stack (default name `postgres-mesh`): one
service per PostgreSQL member (replicas 1, `endpoint_mode: dnsrr`, its data
directory a loop mount of the run's state folder), a replicated PgBouncer,
etcd, HAProxy, Toxiproxy and Prometheus on one attachable overlay network.

Facts of this engine here (see DESIGN.md): no IPVS, so no service VIP — every
service is dnsrr; Swarm publishes on every interface, so no service publishes
a port: an *edge* container, started with plain `docker run` outside the
swarm and attached to the stack's overlay network, publishes every host port
on 127.0.0.1 (HAProxy in TCP mode, re-resolving the services' task addresses
every second). "Service" in the `Deployment` protocol is the stack file's
service name (coordinator-1 ...), mapped to the Swarm service
`<stack>_<service>`; `container(service)` is the running task's container.

Ownership: every service, task container, network and the edge carry the
io.pgchaos.* labels; `down` removes only this stack (`docker stack rm NAME`
after checking its services are ours) and its edge. A single-node swarm is
created (`docker swarm init --advertise-addr 127.0.0.1`) when the engine is in
none; the swarm is left on teardown only when pgchaos created it (its node
carries our label) and no service of anyone remains.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import docker
import docker.errors
import requests
from dotenv import dotenv_values

from harness.engines.base import (
    OWNER_LABEL,
    RUN_LABEL,
    ContainerVerbs,
    EngineContext,
    HealthCheck,
    docker_client,
    ensure_running,
    owner_alive,
)
from harness.engines.swarm.slots import SlottedService, slotted_services, task_of
from harness.errors import PgchaosError

if TYPE_CHECKING:
    from harness.stack.manifest import Manifest
    from harness.stack.spec import Ports

DEFAULT_STACK = "postgres-mesh"
STACK_FILE = "docker-stack.yml"
NAMESPACE_LABEL = "com.docker.stack.namespace"
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"
TASK_LABEL = "com.docker.swarm.task.id"
TASK_NAME_LABEL = "com.docker.swarm.task.name"  # <stack>_<service>.<slot>.<task id>
EDGE_LABEL = "io.pgchaos.swarm-edge"  # value: the stack the edge publishes
ENGINE_LABEL = "io.pgchaos.engine"
SWARM_NODE_LABEL = "io.pgchaos.swarm-created"  # on the node of a swarm pgchaos initialised
EDGE_PORT_BASE = 20000
ROLLED_SUFFIX = "-pgchaos-rolled"  # the second local tag of an image for rolling updates


def _run(cmd: list[str], timeout: float = 120.0, env: dict[str, str] | None = None,
         what: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise PgchaosError(f"{what or ' '.join(cmd[:3])} timed out after {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        tail = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines()
                if "image could not be accessed" not in ln and "digest" not in ln.lower()][-2:]
        said = " | ".join(tail) or f"exit {proc.returncode}"
        raise PgchaosError(f"{what or ' '.join(cmd[:3])} failed: {said}")
    return proc


def swarm_state(client: docker.DockerClient) -> dict[str, Any]:
    """{"state": inactive|active|..., "manager": bool, "node": id}."""
    info = client.info().get("Swarm") or {}
    return {"state": info.get("LocalNodeState", "inactive"), "manager": bool(info.get("ControlAvailable")),
            "node": info.get("NodeID", "")}


def ensure_swarm(client: docker.DockerClient, progress: Callable[[str], None] = print) -> bool:
    """A swarm this engine manages: `docker swarm init --advertise-addr 127.0.0.1`
    when it is in none (then its node gets our label, and True is returned).
    A worker node of someone else's swarm is refused: pgchaos never joins one."""
    state = swarm_state(client)
    if state["state"] == "active":
        if not state["manager"]:
            raise PgchaosError("this engine is a worker of another swarm: --engine swarm needs a manager "
                               "(pgchaos never joins or leaves a swarm it did not create)")
        return False
    if state["state"] != "inactive":
        raise PgchaosError(f"this engine's swarm state is {state['state']!r}; settle it first "
                           "(pgchaos never joins or leaves a swarm it did not create)")
    progress("docker swarm init --advertise-addr 127.0.0.1 (single-node swarm; pgchaos leaves it at the end)")
    _run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"], what="docker swarm init")
    node = swarm_state(client)["node"]
    _run(["docker", "node", "update", "--label-add", f"{SWARM_NODE_LABEL}=true", node],
         what="docker node update")
    return True


def leave_swarm_if_ours(client: docker.DockerClient, progress: Callable[[str], None] = print) -> bool:
    """Leave the swarm only when pgchaos created it (its node label says so) and no
    service of anyone is left in it; True when it was left."""
    state = swarm_state(client)
    if state["state"] != "active" or not state["manager"]:
        return False
    try:
        node = client.nodes.get(state["node"])
    except docker.errors.APIError:
        return False
    if (node.attrs.get("Spec", {}).get("Labels") or {}).get(SWARM_NODE_LABEL) != "true":
        return False
    if client.services.list():
        return False
    if len(client.nodes.list()) > 1:
        return False
    _run(["docker", "swarm", "leave", "--force"], what="docker swarm leave")
    progress("left the single-node swarm pgchaos had created")
    return True


class OverlayNetwork:
    """The stack's overlay network as the nemesis uses a network (name, reload,
    containers, connect); its `containers` skip Swarm's load-balancer endpoint
    (`lb-…`, no container), and a task cannot be disconnected from it."""

    def __init__(self, network: Any, client: docker.DockerClient) -> None:
        self._network = network
        self._client = client
        self.name = network.name
        self.id = network.id

    @property
    def attrs(self) -> dict[str, Any]:
        return self._network.attrs

    def reload(self) -> None:
        self._network.reload()

    @property
    def containers(self) -> list[Any]:
        out = []
        for cid in (self._network.attrs.get("Containers") or {}):
            if cid.startswith("lb-"):
                continue
            with contextlib.suppress(docker.errors.NotFound):
                out.append(self._client.containers.get(cid))
        return out

    def connect(self, container: Any, **kwargs: Any) -> None:
        self._network.connect(container, **kwargs)

    def disconnect(self, container: Any, **kwargs: Any) -> None:
        raise PgchaosError("partition is not available on the swarm engine: a task cannot be taken off its "
                           "service's overlay network (use Toxiproxy links, task-kill or stop)")


class SwarmDeployment(ContainerVerbs):
    """One Swarm stack (the guide's `postgres-mesh`) plus its 127.0.0.1 edge."""

    name: ClassVar[str] = "swarm"
    description: ClassVar[str] = ("Docker Swarm: `docker stack deploy` of the stack file beside the manifest "
                                  "(docker-stack.yml)")
    can_attach: ClassVar[bool] = False
    profile_folder: ClassVar[str] = "swarm"  # a profile's own stack for Swarm (compose/citus/swarm/)

    def __init__(self, stack_name: str, workdir: Path, manifest: Manifest, ports: Ports,
                 env_file: Path | None = None, override_file: Path | None = None,
                 state_dir: Path | None = None, provisioned: bool = True,
                 progress: Callable[[str], None] = print) -> None:
        if not stack_name or not stack_name.replace("-", "").replace("_", "").isalnum():
            raise PgchaosError(f"swarm stack name {stack_name!r}: use letters, digits, - and _")
        self.project = stack_name
        self.workdir = workdir
        self.manifest = manifest
        self.ports = ports
        self.env_file = env_file
        self.override_file = override_file
        self.state_dir = state_dir
        self.provisioned = provisioned
        self.progress = progress
        self.stack_file = workdir / STACK_FILE
        self._docker: docker.DockerClient | None = None
        self._model: dict[str, Any] | None = None

    @classmethod
    def create(cls, ctx: EngineContext) -> SwarmDeployment:
        """The stack `--stack-name` (else $PGCHAOS_SWARM_STACK, else postgres-mesh) from the stack
        file beside the manifest, with the run's env and ownership override."""
        name = ctx.stack_name or os.environ.get("PGCHAOS_SWARM_STACK") or DEFAULT_STACK
        return cls(name, ctx.manifest.dir, ctx.manifest, ctx.ports, env_file=ctx.env_file,
                   override_file=ctx.override_file, state_dir=ctx.state_dir, progress=ctx.progress)

    @classmethod
    def capabilities(cls, caps: dict[str, int]) -> dict[str, int]:
        """No one-shot tools (`docker compose run`); Swarm's own operations ("swarm")."""
        caps = {k: v for k, v in caps.items() if k != "tools"}
        return {**caps, "swarm": 1}

    @classmethod
    def collect(cls, everything: bool, progress: Callable[[str], None]) -> list[str]:
        return collect_swarm(everything, progress)

    def find(self, services: list[str], all_running: bool = True) -> None:
        raise PgchaosError("--attach works with --engine compose only; the swarm engine provisions its stack")

    @property
    def docker(self) -> docker.DockerClient:
        if self._docker is None:
            self._docker = docker_client()
        return self._docker

    # -- the stack file --------------------------------------------------------------
    def model(self) -> dict[str, Any]:
        if self._model is None:
            import yaml

            if not self.stack_file.is_file():
                raise PgchaosError(f"--engine swarm needs a stack file beside the manifest: {self.stack_file} "
                                   "is missing")
            try:
                self._model = yaml.safe_load(self.stack_file.read_text()) or {}
            except yaml.YAMLError as exc:
                raise PgchaosError(f"{self.stack_file}: not YAML ({str(exc).splitlines()[0]})") from None
        return self._model

    def services(self, every_profile: bool = False) -> list[str]:
        """What runs, by the names the manifest uses: each stack-file service, a replicated
        service whose hostname names its tasks by slot as those members (`worker` with 4
        replicas: worker-1 … worker-4); with every_profile, also the manifest's one-shot tools
        service (compose runs it under a profile; this engine does not run it)."""
        slotted = self.slotted()
        names = {n for n in self.stack_file_services() if n not in slotted}
        for service in slotted.values():
            names.update(service.members())
        if every_profile and self.manifest.tools_service:
            names.add(self.manifest.tools_service)
        return sorted(names)

    def stack_file_services(self) -> list[str]:
        """The stack file's service names (`coordinator`, `worker`, `pgbouncer` …)."""
        return sorted(self.model().get("services") or {})

    def slotted(self) -> dict[str, SlottedService]:
        """The stack file's replicated services whose tasks are members by slot (slots.py)."""
        return slotted_services(self.model().get("services") or {})

    def task_of(self, member: str) -> tuple[str, int] | None:
        """(service, slot) of a member that is a task slot (`worker-3` -> (`worker`, 3))."""
        return task_of(member.removeprefix(f"{self.project}_"), self.slotted())

    def swarm_service(self, service: str) -> str:
        """`coordinator-1` -> `postgres-mesh_coordinator-1`, a slot member `worker-3` ->
        `postgres-mesh_worker` (a Swarm name is kept as it is)."""
        if service.startswith(f"{self.project}_"):
            return service
        slot = self.task_of(service)
        return f"{self.project}_{slot[0] if slot else service}"

    def member_key(self, service: str, slot: int | None, taken: Any = ()) -> str:
        """The name a task goes by: its member name for a slotted service, else the service
        (further replicas of an unslotted one as `name.SLOT`)."""
        slotted = self.slotted().get(service)
        if slotted is not None and slot:
            return slotted.member(slot)
        return service if service not in taken else f"{service}.{slot}"

    @property
    def network_name(self) -> str:
        return f"{self.project}_cluster"

    @property
    def edge_name(self) -> str:
        return f"{self.project}-edge"

    def write_owner_override(self, path: Path, labels: dict[str, str]) -> None:
        """A stack-file override adding our labels to every service (service and
        container labels) and to the network."""
        labels = {**labels, ENGINE_LABEL: "swarm"}
        doc = {"version": str(self.model().get("version", "3.8")),
               "services": {n: {"labels": labels, "deploy": {"labels": labels}}
                            for n in self.stack_file_services()},
               # the whole definition: an override's network replaces the stack file's (attachable!)
               "networks": {n: {**(net or {}), "labels": labels}
                            for n, net in (self.model().get("networks") or {}).items()}}
        path.write_text(json.dumps(doc, indent=2))

    # -- the edge: host ports on 127.0.0.1 ---------------------------------------------
    def edge_routes(self) -> list[tuple[str, int, int, int]]:
        """(service, container port, edge port, host port or 0 for ephemeral) for every
        port the harness reaches: the router's, the pooler's, Toxiproxy's API,
        Prometheus, Alertmanager, the alert receiver and each member's PostgreSQL
        and Patroni REST ports."""
        m, p = self.manifest, self.ports
        fixed: dict[tuple[str, int], int] = {}
        r = m.router
        for port, host in ((r.primary_port, p.haproxy_primary), (r.replica_port, p.haproxy_replica),
                           (r.stats_port, p.haproxy_stats), (r.health_port, p.health)):
            if port:
                fixed[(r.service, port)] = host
        if m.pooler is not None:
            fixed[(m.pooler.service, m.pooler.port)] = p.pgbouncer
        if m.toxiproxy is not None:
            fixed[(m.toxiproxy.service, m.toxiproxy.api_port)] = p.toxiproxy
        if m.monitoring is not None and m.monitoring.prometheus:
            fixed[(m.monitoring.prometheus, m.monitoring.prometheus_port)] = p.prometheus
        if m.monitoring is not None and m.monitoring.alertmanager:
            fixed[(m.monitoring.alertmanager, m.monitoring.alertmanager_port)] = p.alertmanager
        if m.monitoring is not None and m.monitoring.alert_receiver:
            fixed[(m.monitoring.alert_receiver, m.monitoring.alert_receiver_port)] = p.alert_receiver
        pairs = list(fixed)
        for group in m.groups:
            for member in group.members:
                pairs.append((member, group.pg_port))
                if group.patroni:
                    pairs.append((member, group.rest_port))
        seen: dict[tuple[str, int], None] = dict.fromkeys(pairs)
        return [(svc, port, EDGE_PORT_BASE + i, fixed.get((svc, port), 0))
                for i, (svc, port) in enumerate(seen)]

    def engine_images(self) -> dict[str, Path]:
        """None of its own: the stack's images are pgchaos's (or the user's)."""
        return {}

    def published_ports(self) -> list[tuple[str, str, int]]:
        return [(svc, "127.0.0.1", host) for svc, _, _, host in self.edge_routes() if host]

    def edge_config(self) -> str:
        lines = ["# pgchaos edge: host ports on 127.0.0.1 -> the stack's services (TCP)",
                 "global", "    maxconn 2000", "    log stdout format raw local0 warning", "",
                 "defaults", "    log global", "    mode tcp", "    retries 2", "    option redispatch",
                 "    timeout connect 1s", "    timeout client 30m", "    timeout server 30m",
                 "    timeout check 1s", "",
                 "resolvers docker", "    nameserver dns 127.0.0.11:53", "    hold valid 1s",
                 "    hold obsolete 1s", "    hold nx 1s", "    hold other 1s", "    hold refused 1s",
                 "    timeout resolve 1s", ""]
        for svc, port, edge, _ in self.edge_routes():
            lines += [f"listen {svc}-{port}", f"    bind *:{edge}", "    balance roundrobin",
                      "    default-server inter 1s fall 2 rise 1 on-marked-down shutdown-sessions "
                      "resolvers docker init-addr none resolve-prefer ipv4",
                      *self.edge_servers(svc, port), ""]
        return "\n".join(lines)

    def edge_servers(self, member: str, port: int) -> list[str]:
        """The edge's servers for one route. A slot member has no DNS name of its own (Swarm
        names only `tasks.<service>`): every task of its service is a candidate, and the one
        whose Patroni REST API says it is this member (GET /patroni: "name") is the server."""
        slot = self.task_of(member)
        if slot is None:
            return [f"    server-template t 4 {member}:{port} check"]
        service = self.slotted()[slot[0]]
        group = self.manifest.group_of(member) if self.manifest is not None else None
        rest = group.rest_port if group is not None else 8008
        return ["    option httpchk", "    http-check send meth GET uri /patroni",
                f"    http-check expect rstring '\"name\": *\"{member}\"'",
                f"    server-template t {max(4, service.replicas + 3)} tasks.{service.service}:{port} "
                f"check port {rest}"]

    def _edge_container(self) -> Any | None:
        found = self.docker.containers.list(all=True, filters={"label": [f"{EDGE_LABEL}={self.project}",
                                                                          f"{OWNER_LABEL}=pgchaos"]},
                                            ignore_removed=True)
        return found[0] if found else None

    def start_edge(self, labels: dict[str, str], image_tag: str) -> None:
        if self.state_dir is None:
            raise PgchaosError("the swarm edge needs the run's state folder")
        cfg = self.state_dir / "edge-haproxy.cfg"
        cfg.write_text(self.edge_config())
        ports = [f"127.0.0.1:{host or ''}:{edge}" for _, _, edge, host in self.edge_routes()]
        cmd = ["docker", "run", "-d", "--name", self.edge_name, "--network", self.network_name,
               "--memory", "64m", "-v", f"{cfg}:/etc/haproxy/haproxy.cfg:ro"]
        for k, v in {**labels, ENGINE_LABEL: "swarm", EDGE_LABEL: self.project}.items():
            cmd += ["--label", f"{k}={v}"]
        for p in ports:
            cmd += ["-p", p]
        _run([*cmd, f"pgchaos/haproxy:{image_tag}"], what="docker run (swarm edge)")

    # -- lifecycle ---------------------------------------------------------------------
    def cli_env(self) -> dict[str, str]:
        """The environment of every `docker` command this deployment runs (an engine
        reached elsewhere, e.g. a swarm manager's, sets DOCKER_HOST here)."""
        return dict(os.environ)

    def _env(self) -> dict[str, str]:
        """The variables `docker stack deploy` substitutes (it reads no `.env` itself): the
        stack's own `.env` and manifest env files as compose reads them, the shell's over
        them (as compose, with the engine's DOCKER_HOST: `cli_env`), pgchaos's own for the
        run over both."""
        env: dict[str, str] = {}
        for path in self.manifest.user_env_files() if self.manifest is not None else []:
            env.update({k: v for k, v in dotenv_values(path).items() if v is not None})
        env.update(self.cli_env())
        env["PGCHAOS_COMPOSE_DIR"] = str(self.workdir.resolve())
        if self.env_file is not None and self.env_file.exists():
            env.update({k: v for k, v in dotenv_values(self.env_file).items() if v is not None})
        return env

    def _stack_services(self) -> list[Any]:
        try:
            return self.docker.services.list(filters={"label": f"{NAMESPACE_LABEL}={self.project}"})
        except docker.errors.APIError:  # not a swarm manager: no stack
            return []

    def check_free(self) -> None:
        """The stack name and the edge's name are not in use (by anyone, ours included)."""
        services = self._stack_services()
        if services:
            owners = {(s.attrs["Spec"].get("Labels") or {}).get(OWNER_LABEL) for s in services}
            whose = "a pgchaos run" if owners == {"pgchaos"} else "someone else"
            raise PgchaosError(f"a swarm stack named {self.project!r} is already deployed (by {whose}); "
                               f"remove it (pgchaos down / docker stack rm) or name another stack")
        with contextlib.suppress(docker.errors.NotFound):
            self.docker.containers.get(self.edge_name)
            raise PgchaosError(f"a container named {self.edge_name} already exists")

    def up(self, timeout_s: float = 180.0) -> None:
        """Swarm (created if none), the stack deployed, the edge started; the tasks
        converge in the background (the caller waits for the steady state)."""
        if not self.provisioned:
            raise PgchaosError("--attach is not supported on the swarm engine")
        created = ensure_swarm(self.docker, self.progress)
        if created and self.state_dir is not None:
            (self.state_dir / "swarm-created").write_text("1\n")
        self.check_free()
        env = self._env()
        files = ["-c", str(self.stack_file)]
        if self.override_file is not None and self.override_file.exists():
            files += ["-c", str(self.override_file)]
        self.progress(f"docker stack deploy {self.project}")
        _run(["docker", "stack", "deploy", "--resolve-image", "never", "--prune", *files, self.project],
             timeout=timeout_s, env=env, what="docker stack deploy")
        labels = self._labels_from_override()
        self.start_edge(labels, env.get("PGCHAOS_IMAGE_TAG", "latest"))

    def _labels_from_override(self) -> dict[str, str]:
        with contextlib.suppress(OSError, ValueError, KeyError, StopIteration):
            doc = json.loads(self.override_file.read_text())  # type: ignore[union-attr]
            return dict(next(iter(doc["services"].values()))["labels"])
        return {OWNER_LABEL: "pgchaos"}

    def down(self, timeout: float = 120.0) -> None:
        """Remove this stack (only when its services are ours — of this run, when the run
        is known), its edge and the rolled image tags; wait for the task containers and
        the network to go; leave the swarm if pgchaos created it and nothing else runs
        in it. Never raises for what is already gone, nor removes what is not ours."""
        if not self.provisioned:
            return
        by_run = self.override_file is not None  # a run removes its own stack; gc (no run) any of ours
        run = self._labels_from_override().get(RUN_LABEL) if by_run else None

        def ours(labels: dict[str, str]) -> bool:
            if labels.get(OWNER_LABEL) != "pgchaos":
                return False
            return not by_run or (run is not None and labels.get(RUN_LABEL) == run)

        for attempt in range(4):  # a busy engine may time out an API call
            try:
                edge = self._edge_container()
                if edge is not None and ours(edge.labels):
                    with contextlib.suppress(docker.errors.NotFound):
                        edge.remove(force=True)
                services = self._stack_services()
                break
            except (requests.RequestException, docker.errors.APIError) as exc:
                if attempt == 3:
                    raise PgchaosError(f"swarm stack {self.project}: the engine does not answer "
                                       f"({type(exc).__name__}); run `pgchaos gc` later") from None
                time.sleep(2.0)
        foreign = [s.name for s in services if not ours(s.attrs["Spec"].get("Labels") or {})]
        if foreign:
            self.progress(f"not removing swarm stack {self.project}: its services are not this run's "
                          f"({', '.join(foreign[:3])}{' …' if len(foreign) > 3 else ''})")
            return
        if services:
            _run(["docker", "stack", "rm", self.project], timeout=120, what="docker stack rm", check=False,
                 env=self.cli_env())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:  # a busy engine may time out an API call: retry until the deadline
                left = self.docker.containers.list(
                    all=True, filters={"label": f"{NAMESPACE_LABEL}={self.project}"}, ignore_removed=True)
                nets = [n for n in self.docker.networks.list(names=[self.network_name])
                        if n.name == self.network_name]
                if not left and not nets:
                    break
                for n in nets if not left else []:  # stack rm leaves the network while tasks drain
                    with contextlib.suppress(docker.errors.APIError):
                        n.remove()
            except Exception as exc:  # noqa: BLE001 - requests' timeouts are not APIError
                self.progress(f"swarm stack {self.project}: waiting for its removal ({type(exc).__name__})")
            time.sleep(1.0)
        else:
            self.progress(f"swarm stack {self.project}: tasks or network still draining after {timeout:.0f} s")
        with contextlib.suppress(Exception):
            for image in self.docker.images.list(name="pgchaos/*"):
                for tag in image.tags:
                    if tag.endswith(ROLLED_SUFFIX):
                        with contextlib.suppress(docker.errors.APIError):
                            self.docker.images.remove(tag, noprune=True)
        try:
            leave_swarm_if_ours(self.docker, self.progress)
        except Exception as exc:  # noqa: BLE001 - `pgchaos gc` leaves it later
            self.progress(f"could not leave the swarm pgchaos created ({type(exc).__name__}); pgchaos gc will")

    # -- tasks and containers ---------------------------------------------------------
    def _services_by_id(self) -> dict[str, str]:
        return {s.id: s.name for s in self._stack_services()}

    def tasks(self, service: str, running_only: bool = True) -> list[dict[str, Any]]:
        """The service's tasks (desired state running unless running_only is False), newest first."""
        filters: dict[str, Any] = {"service": self.swarm_service(service)}
        if running_only:
            filters["desired-state"] = "running"
        try:
            found = self.docker.api.tasks(filters=filters)
        except docker.errors.APIError:
            return []
        found = [t for t in found if t.get("ServiceID") in self._services_by_id()] if found else []
        slot = self.task_of(service)
        if slot is not None:
            found = [t for t in found if t.get("Slot") == slot[1]]
        return sorted(found, key=lambda t: t.get("CreatedAt", ""), reverse=True)

    def containers(self) -> dict[str, Any]:
        """Service name -> container of its current task (desired state running); a slotted
        service's tasks by member name, further replicas of another as `name.SLOT`. Tasks
        being replaced have no entry."""
        names = self._services_by_id()
        if not names:
            return {}
        try:
            tasks = self.docker.api.tasks(filters={"desired-state": "running"})
        except docker.errors.APIError:
            return {}
        current = {t["ID"]: t for t in tasks if t.get("ServiceID") in names}
        found = self.docker.containers.list(all=True, filters={"label": f"{NAMESPACE_LABEL}={self.project}"},
                                            ignore_removed=True)
        out: dict[str, Any] = {}
        prefix = f"{self.project}_"
        for c in sorted(found, key=lambda c: current.get(c.labels.get(TASK_LABEL, ""), {}).get("Slot") or 0):
            task = current.get(c.labels.get(TASK_LABEL, ""))
            if task is None:
                continue
            short = c.labels.get(SWARM_SERVICE_LABEL, "").removeprefix(prefix)
            out[self.member_key(short, task.get("Slot"), out)] = c
        return out

    def container(self, service: str) -> Any:
        svc = service.removeprefix(f"{self.project}_")
        found = self.containers()
        if svc not in found:
            if svc not in self.services():
                raise PgchaosError(f"no service {service!r} in swarm stack {self.project}; have: "
                                   f"{', '.join(self.services())}")
            raise PgchaosError(f"{self.swarm_service(svc)}: no running task right now")
        return self.refuse_unless_owned(found[svc])

    def owns(self, container: Any) -> bool:
        labels = container.labels
        if labels.get(OWNER_LABEL) != "pgchaos":
            return False
        return labels.get(NAMESPACE_LABEL) == self.project or labels.get(EDGE_LABEL) == self.project

    def edge(self) -> Any:
        edge = self._edge_container()
        if edge is None:
            raise PgchaosError(f"the edge container of {self.project} is gone")
        return edge

    def network(self) -> OverlayNetwork:
        nets = [n for n in self.docker.networks.list(names=[self.network_name]) if n.name == self.network_name]
        if not nets or (nets[0].attrs.get("Labels") or {}).get(OWNER_LABEL) != "pgchaos":
            raise PgchaosError(f"no network of {self.project} found")
        return OverlayNetwork(nets[0], self.docker)

    # -- verbs -------------------------------------------------------------------------
    def kill(self, service: str, signal: str = "SIGKILL") -> None:
        """Kill the running task's container; Swarm replaces the task."""
        super().kill(service, signal)

    def stop(self, service: str, timeout: int = 20) -> None:
        """Stop the running task's container; Swarm replaces the task."""
        super().stop(service, timeout)

    def start(self, service: str) -> None:
        """Swarm restarts tasks itself: wait (bounded) for a running task, unpause a
        paused one, force a new task when none comes."""
        with contextlib.suppress(PgchaosError):
            container = self.container(service)
            container.reload()
            if container.status == "paused":
                container.unpause()
            return
        if self.wait_task_running(service, timeout_s=30.0) is None:
            self.force_update(service, detach=True)

    def disconnect(self, service: str) -> None:
        raise PgchaosError("partition is not available on the swarm engine: a task cannot be taken off "
                           "its service's overlay network (use Toxiproxy links, task-kill or stop)")

    def _edge_running(self) -> None:
        """The edge running (tasks are Swarm's to keep on the overlay)."""
        with contextlib.suppress(PgchaosError, docker.errors.APIError):
            edge = self.edge()
            edge.reload()
            if edge.status != "running":
                edge.start()

    def desired_in_stack_file(self, service: str) -> int:
        svc = (self.model().get("services") or {}).get(service.removeprefix(f"{self.project}_")) or {}
        return int((svc.get("deploy") or {}).get("replicas", 1))

    def heal_all(self, services: Sequence[str] | None = None) -> None:
        """Heal-all: paused task containers unpaused, the edge running, every service scaled
        back to the stack file's replicas (Swarm replaces killed tasks itself) — a service
        whose tasks are members (slots.py) only up, never down: a member removed without
        its data drained first (a Citus worker's shards) is an outage, not a repair."""
        for container in self.containers().values():
            ensure_running(container)
        self._edge_running()
        slotted = self.slotted()
        for name, (_, desired) in self.replicas().items():
            want = self.desired_in_stack_file(name)
            if desired < want or (desired > want and name not in slotted):
                with contextlib.suppress(PgchaosError):
                    self.scale(name, want)

    def endpoint(self, service: str, port: int) -> tuple[str, int]:
        """The 127.0.0.1 port the edge publishes for a service's port."""
        svc = service.removeprefix(f"{self.project}_")
        route = next((r for r in self.edge_routes() if r[0] == svc and r[1] == port), None)
        if route is None:
            raise PgchaosError(f"the swarm edge publishes no port for {svc}:{port}")
        edge = self.edge()
        edge.reload()
        for binding in (edge.attrs["NetworkSettings"]["Ports"] or {}).get(f"{route[2]}/tcp") or []:
            if binding.get("HostIp") in ("127.0.0.1", ""):
                return "127.0.0.1", int(binding["HostPort"])
        raise PgchaosError(f"the swarm edge does not publish {svc}:{port} on 127.0.0.1 (is it running?)")

    def health_checks(self) -> list[HealthCheck]:
        """The guide's `docker stack services postgres-mesh | grep -v "1/1\\|3/3\\|4/4"`:
        every service of the stack at its desired replicas (and the edge running)."""
        reps = self.replicas()
        bad = {n: f"{r}/{d}" for n, (r, d) in sorted(reps.items()) if r != d}
        missing = sorted(set(self.stack_file_services()) - set(reps))
        edge = "absent" if self.provisioned else "none (attached: the manifest's 127.0.0.1 ports)"
        if self.provisioned:
            with contextlib.suppress(PgchaosError, docker.errors.APIError):
                edge = self.edge().status
        ok = not bad and not missing and (edge == "running" or not self.provisioned)
        detail = (f"all {len(reps)} services of {self.project} at their desired replicas; edge {edge}" if ok else
                  f"not at desired replicas: {bad or 'none'}; missing: {missing or 'none'}; edge {edge}")
        return [HealthCheck("swarm_replicas", ok, detail,
                            {"replicas": {n: f"{r}/{d}" for n, (r, d) in sorted(reps.items())}, "edge": edge})]

    def run_tool(self, service: str, script: str, *args: str, timeout: float = 600.0) -> tuple[int, str]:
        raise PgchaosError("one-shot tools are not available on the swarm engine (use --engine compose)")

    # -- Swarm service operations (the guide's `docker service ...`) -----------------------
    def service_spec(self, service: str) -> dict[str, Any]:
        try:
            svc = self.docker.services.get(self.swarm_service(service))
        except docker.errors.NotFound:
            raise PgchaosError(f"no swarm service {self.swarm_service(service)}") from None
        if (svc.attrs["Spec"].get("Labels") or {}).get(OWNER_LABEL) != "pgchaos":
            raise PgchaosError(f"refusing to touch swarm service {svc.name}: not ours")
        return svc.attrs

    def replicas(self) -> dict[str, tuple[int, int]]:
        """`docker stack services NAME`'s REPLICAS column: short name -> (running, desired)."""
        out: dict[str, tuple[int, int]] = {}
        names = {s.id: s for s in self._stack_services()}
        try:
            tasks = self.docker.api.tasks(filters={"desired-state": "running"})
        except docker.errors.APIError:
            tasks = []
        running: dict[str, int] = {}
        for t in tasks:
            if t.get("ServiceID") in names and (t.get("Status") or {}).get("State") == "running":
                running[t["ServiceID"]] = running.get(t["ServiceID"], 0) + 1
        for sid, svc in names.items():
            mode = svc.attrs["Spec"].get("Mode") or {}
            desired = int((mode.get("Replicated") or {}).get("Replicas", 1))
            out[svc.name.removeprefix(f"{self.project}_")] = (running.get(sid, 0), desired)
        return out

    def wait_task_running(self, service: str, timeout_s: float = 60.0, not_task: str | None = None,
                          poll_s: float = 0.5) -> dict[str, Any] | None:
        """The first running task of a service (other than `not_task`), or None after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for task in self.tasks(service):
                if task["ID"] != not_task and (task.get("Status") or {}).get("State") == "running":
                    return task
            time.sleep(poll_s)
        return None

    def update_state(self, service: str) -> str:
        """UpdateStatus.State of a service ("" when it never was updated)."""
        return ((self.service_spec(service).get("UpdateStatus") or {}).get("State")) or ""

    def force_update(self, service: str, detach: bool = True, timeout: float = 300.0) -> None:
        """`docker service update --force SERVICE` (detached: returns at once)."""
        self.service_spec(service)
        _run(["docker", "service", "update", "--force", *(["--detach"] if detach else ["--quiet"]),
              self.swarm_service(service)], timeout=timeout, what=f"docker service update --force {service}",
             env=self.cli_env())

    def update_image(self, service: str, image: str, detach: bool = True, timeout: float = 300.0) -> None:
        """`docker service update --image IMAGE SERVICE` (a rolling update)."""
        self.service_spec(service)
        _run(["docker", "service", "update", "--no-resolve-image", "--image", image,
              *(["--detach"] if detach else ["--quiet"]), self.swarm_service(service)],
             timeout=timeout, what=f"docker service update --image {service}", env=self.cli_env())

    def scale(self, service: str, replicas: int, timeout: float = 120.0) -> None:
        """`docker service scale SERVICE=N` (detached)."""
        self.service_spec(service)
        _run(["docker", "service", "scale", "--detach", f"{self.swarm_service(service)}={int(replicas)}"],
             timeout=timeout, what=f"docker service scale {service}", env=self.cli_env())

    def image_of(self, service: str) -> str:
        image = self.service_spec(service)["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        return image.split("@", 1)[0]

    def rolled_tag(self, image: str) -> str:
        """A second local tag of the same image (created if absent): what a rolling
        `--image` update moves to. Removed by `down`."""
        base = image.removesuffix(ROLLED_SUFFIX)
        target = base + ROLLED_SUFFIX if not image.endswith(ROLLED_SUFFIX) else base
        if target != base:
            self.tag_image(base, target)
        return target

    def tag_image(self, base: str, target: str) -> None:
        """`docker tag BASE TARGET` wherever the stack's tasks may run (here: this one engine)."""
        _run(["docker", "tag", base, target], what="docker tag", env=self.cli_env())


def remove_stack(stack_name: str, progress: Callable[[str], None] = print) -> None:
    """Tear down one of our swarm stacks by name (gc, `pgchaos down` of a dead run)."""
    SwarmDeployment(stack_name, Path("."), None, None, progress=progress).down()  # type: ignore[arg-type]


def collect_swarm(everything: bool = False, progress: Callable[[str], None] = print) -> list[str]:
    """Swarm stacks (and edges) of ours whose owner process is dead (every one of
    ours with everything=True); the stacks removed. Never touches a stack whose
    services do not all carry our label, nor a swarm pgchaos did not create."""
    client = docker_client()
    if swarm_state(client)["state"] != "active" or not swarm_state(client)["manager"]:
        stacks: dict[str, bool] = {}
    else:
        stacks = {}
        for svc in client.services.list(filters={"label": f"{OWNER_LABEL}=pgchaos"}):
            labels = svc.attrs["Spec"].get("Labels") or {}
            name = labels.get(NAMESPACE_LABEL)
            if name and labels.get(ENGINE_LABEL) == "swarm":
                stacks[name] = stacks.get(name, False) or owner_alive(labels)
    for edge in client.containers.list(all=True, filters={"label": [f"{OWNER_LABEL}=pgchaos", EDGE_LABEL]},
                                       ignore_removed=True):
        name = edge.labels.get(EDGE_LABEL, "")
        stacks[name] = stacks.get(name, False) or owner_alive(edge.labels)
    removed = []
    for name, alive in sorted(stacks.items()):
        if alive and not everything:
            continue
        remove_stack(name, progress)
        removed.append(name)
    leave_swarm_if_ours(client, progress)  # a swarm pgchaos created and nobody uses any more
    return removed
