"""The stack on a swarm of several hosts, driven through a manager's engine.

`SwarmNodesDeployment` is the swarm engine (`docker stack deploy` of the stack
file, the same services, faults and steady state) with three differences:

- every `docker` command and API call goes to a manager's engine (an endpoint
  such as `unix:///…/docker.sock`, `tcp://host:2376` or `ssh://user@host`),
  the next live manager when one is gone; a task's container is reached through
  the engine of the node that runs it;
- members of a group are placed on distinct nodes (`placement`), and the
  steady state checks it;
- the host ports: an *inner* edge on every node (a plain container on the
  stack's overlay, the swarm engine's HAProxy config) and an *outer* edge on
  this machine's engine that publishes every port on 127.0.0.1 and balances
  over the nodes' inner edges, so a host that dies takes no port with it.

On this machine the nodes are Docker-in-Docker containers (`nodes.NodeSet`),
created by `up` and removed by `down` (volumes and network included).

Attach mode (`--attach [STACK]` with a manifest's `[swarm]`): a stack someone
else deployed on a swarm of real hosts. The managers and each node's engine are
the manifest's endpoints (`nodes.AttachedNodes`); the stack is checked to exist
and to run the services the manifest names; the host ports are the manifest's
127.0.0.1 ports (`[swarm.ports]`, else `PGCHAOS_<NAME>_PORT`), no edge is
started; nothing is deployed, created or removed, and the host faults that need
a host pgchaos runs (node-crash, node-stop, node-cut: capability
`node-control`) are not offered — a drain goes through a manager and is.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import docker
import docker.errors
import requests

from harness.engines.base import OWNER_LABEL, RUN_LABEL, EngineContext, HealthCheck
from harness.engines.swarm.deployment import (
    DEFAULT_STACK,
    EDGE_LABEL,
    ENGINE_LABEL,
    NAMESPACE_LABEL,
    SWARM_SERVICE_LABEL,
    TASK_LABEL,
    TASK_NAME_LABEL,
    SwarmDeployment,
    _run,
)
from harness.engines.swarm_nodes.nodes import (
    SLOT_LABEL,
    AttachedNodes,
    Node,
    NodeSet,
    node_count,
    node_image_dir,
    node_image_tag,
)
from harness.engines.swarm_nodes.placement import deploy_placement, placement_check
from harness.errors import PgchaosError

if TYPE_CHECKING:
    from harness.stack.manifest import Manifest
    from harness.stack.spec import Ports

OUTER_EDGE_LABEL = "io.pgchaos.swarm-nodes-edge"  # value: the stack the outer edge publishes
VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def substitute(text: str, env: dict[str, str]) -> str:
    """`${VAR}` and `${VAR:-default}` as `docker stack deploy` reads them (unset and no
    default: left as written)."""
    def one(m: re.Match[str]) -> str:
        value = env.get(m.group(1))
        if value:
            return value
        return m.group(2) if m.group(2) is not None else m.group(0)
    return VARIABLE.sub(one, text)


class SwarmNodesDeployment(SwarmDeployment):
    """One Swarm stack on several nodes (all managers), reached through a manager."""

    name: ClassVar[str] = "swarm-nodes"
    description: ClassVar[str] = ("the swarm engine on several hosts (Docker-in-Docker nodes here, "
                                  "PGCHAOS_SWARM_NODES of them)")
    can_attach: ClassVar[bool] = True
    # what an attached swarm does not offer: its hosts are not containers pgchaos runs
    provisioned_only: ClassVar[tuple[str, ...]] = ("node-control",)

    def __init__(self, stack_name: str, workdir: Path, manifest: Manifest, ports: Ports,
                 env_file: Path | None = None, override_file: Path | None = None,
                 state_dir: Path | None = None, provisioned: bool = True,
                 progress: Callable[[str], None] = print, count: int | None = None) -> None:
        super().__init__(stack_name, workdir, manifest, ports, env_file=env_file, override_file=override_file,
                         state_dir=state_dir, provisioned=provisioned, progress=progress)
        run_dir = state_dir or Path(".")
        target = manifest.swarm if manifest is not None else None
        self.nodes: NodeSet | AttachedNodes = (
            NodeSet(stack_name, run_dir, count or node_count(), binds=[run_dir.resolve(), workdir.resolve()],
                    progress=progress) if provisioned else
            AttachedNodes(stack_name, target.managers if target else (), target.nodes if target else {}))
        self._manager: Node | None = None
        self.avoid: set[str] = set()  # nodes a fault cut off: not asked to manage
        self.drained: set[str] = set()  # attach mode: nodes pgchaos drained (heal-all makes only these active)
        self._where: dict[str, str] = {}  # container id -> endpoint of its node
        self.timings: dict[str, float] = {}

    def engine_images(self) -> dict[str, Path]:
        """The node image, built beside pgchaos's images (it is FROM the same base)."""
        return {node_image_tag(): node_image_dir()}

    @classmethod
    def create(cls, ctx: EngineContext) -> SwarmNodesDeployment:
        """Provision: the swarm engine's (its own Docker-in-Docker nodes). Attach: the stack
        `--attach STACK`, else the manifest's `[swarm] stack`, else $PGCHAOS_SWARM_STACK or
        postgres-mesh, on the manifest's managers (checked by `find`)."""
        if ctx.provisioned:
            return super().create(ctx)  # type: ignore[return-value]
        target = ctx.manifest.swarm
        name = ctx.attach or (target.stack if target else None) or os.environ.get("PGCHAOS_SWARM_STACK") \
            or DEFAULT_STACK
        return cls(name, ctx.manifest.dir, ctx.manifest, ctx.ports, state_dir=ctx.state_dir, provisioned=False,
                   progress=ctx.progress)

    @classmethod
    def capabilities(cls, caps: dict[str, int]) -> dict[str, int]:
        """The swarm engine's, plus several hosts ("swarm-nodes": drain) and hosts pgchaos runs
        ("node-control": crash, stop, cut; `provisioned_only`)."""
        return {**super().capabilities(caps), "swarm-nodes": 1, "node-control": 1}

    @classmethod
    def collect(cls, everything: bool, progress: Callable[[str], None]) -> list[str]:
        """Nothing of its own: the nodes, their volumes and the outer edge carry the run's
        project label, so `pgchaos gc`'s label sweep removes a dead run's; stacks on the
        host's own swarm are the swarm engine's to collect."""
        return []

    # -- the manager's engine ----------------------------------------------------------------
    def manager(self) -> Node:
        """The first node whose engine answers and that no fault cut off (the last good one first)."""
        candidates = [n for n in self.nodes.managers if n.name not in self.avoid]
        if self._manager in candidates:
            candidates.remove(self._manager)
            candidates.insert(0, self._manager)
        for node in candidates:
            if self.nodes.answers(node):
                self._manager = node
                return node
        raise PgchaosError(f"no manager of swarm {self.project} answers "
                           f"({', '.join(n.name for n in self.nodes.managers) or 'none named'})")

    @property
    def docker(self) -> docker.DockerClient:  # type: ignore[override]
        return self.nodes.client(self.manager())

    def cli_env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.manager().endpoint}

    # -- attach: a stack someone else deployed -----------------------------------------------
    def find(self, services: list[str], all_running: bool = True) -> None:
        """Attach: the manifest's managers answer, the stack is deployed, its services are the
        manifest's, and every node that runs one of its tasks has an engine pgchaos reaches
        (with `all_running`, every service has a running task). One line otherwise."""
        if self.provisioned:
            raise PgchaosError("find is for attach mode: this swarm-nodes stack is provisioned")
        target = self.manifest.swarm
        if target is None:
            raise PgchaosError(f"{self.manifest.path}: --attach on --engine swarm-nodes needs a [swarm] table: "
                               'managers = ["tcp://host:2376"], [swarm.nodes], [swarm.ports] (docs/manifest.md)')
        manager = self.manager()
        self._model = None
        if not self._stack_services():
            others: set[str] = set()
            with contextlib.suppress(docker.errors.APIError, requests.RequestException):
                others = {(s.attrs["Spec"].get("Labels") or {}).get(NAMESPACE_LABEL, "")
                          for s in self.docker.services.list()} - {""}
            there = f"stacks there: {', '.join(sorted(others))}" if others else "no stack there"
            raise PgchaosError(f"--attach: no swarm stack {self.project!r} on {manager.endpoint}; {there}")
        have = self.services()
        missing = [s for s in services if s not in have]
        if missing:
            raise PgchaosError(f"{self.manifest.path}: service {missing[0]!r} is not in swarm stack "
                               f"{self.project} ({len(missing)} of the manifest's missing); services there: "
                               f"{', '.join(have)}")
        where = self.placement()
        for host in sorted(set(where.values())):
            node = self.nodes.by_name(host)  # one line when the manifest names no engine for it
            if not self.nodes.answers(node):
                raise PgchaosError(f"--attach: the engine of swarm node {host} ({node.endpoint}) does not answer")
        down = [s for s in services if s not in where]
        if all_running and down:
            raise PgchaosError(f"--attach: {self.swarm_service(down[0])} has no running task "
                               f"({len(down)} service(s) of the manifest down); a session needs every one running")

    def model(self) -> dict[str, Any]:
        """Provisioned: the stack file. Attached: the deployed services as the stack file would
        say them (image, hostname template, replicas found), read from a manager."""
        if self.provisioned:
            return super().model()
        if self._model is None:
            services: dict[str, Any] = {}
            for svc in self._stack_services():
                spec = svc.attrs["Spec"]
                container = spec["TaskTemplate"]["ContainerSpec"]
                replicas = int(((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas", 1))
                services[svc.name.removeprefix(f"{self.project}_")] = {
                    "image": str(container.get("Image", "")).split("@", 1)[0],
                    "hostname": container.get("Hostname", ""), "deploy": {"replicas": replicas}}
            if not services:
                return {"services": {}}  # not cached: a manager re-electing answers nothing for a moment
            self._model = {"services": services}
        return self._model

    def service_spec(self, service: str) -> dict[str, Any]:
        """Attached: a service of this stack (not labelled ours: the user's stack)."""
        if self.provisioned:
            return super().service_spec(service)
        try:
            svc = self.docker.services.get(self.swarm_service(service))
        except docker.errors.NotFound:
            raise PgchaosError(f"no swarm service {self.swarm_service(service)}") from None
        if (svc.attrs["Spec"].get("Labels") or {}).get(NAMESPACE_LABEL) != self.project:
            raise PgchaosError(f"refusing to touch swarm service {svc.name}: not part of {self.project}")
        return svc.attrs

    def endpoint(self, service: str, port: int) -> tuple[str, int]:
        """Attached: the manifest's 127.0.0.1 port (`[swarm.ports]`, else the fixed
        PGCHAOS_<NAME>_PORT of the router, pooler, Toxiproxy or monitoring)."""
        if self.provisioned:
            return super().endpoint(service, port)
        svc = service.removeprefix(f"{self.project}_")
        target = self.manifest.swarm
        host = target.ports.get((svc, port)) if target is not None else None
        if host is None:
            host = next((h for s, p, _, h in self.edge_routes() if s == svc and p == port and h), None)
        if host is None:
            raise PgchaosError(f'the manifest\'s [swarm.ports] names no 127.0.0.1 port for {svc}:{port}; add '
                               f'"{svc}:{port}" = PORT')
        return "127.0.0.1", int(host)

    # -- the stack file's additions ------------------------------------------------------------
    def write_owner_override(self, path: Path, labels: dict[str, str]) -> None:
        """The swarm engine's ownership override plus placement (members on distinct nodes)."""
        super().write_owner_override(path, labels)
        doc = json.loads(path.read_text())
        services = self.stack_file_services()
        placement = deploy_placement(self.manifest, services, {s: self.desired_in_stack_file(s) for s in services},
                                     self.nodes.count, self.slotted())
        for name, extra in placement.items():
            doc["services"][name]["deploy"].update(extra)
        path.write_text(json.dumps(doc, indent=2))

    def image_refs(self, tag: str, env: dict[str, str] | None = None) -> dict[int, list[str]]:
        """Slot -> the images its node may run: the images of the services placed on it
        (pinned there, or free to run anywhere) and the edge's; the stack file's
        `${PGCHAOS_IMAGE_TAG…}` read as `tag`, other `${VAR:-default}` from `env`
        (the Citus image: `${PGCHAOS_CITUS_IMAGE:-…}`)."""
        services = self.model().get("services") or {}
        placement = deploy_placement(self.manifest, sorted(services),
                                     {s: self.desired_in_stack_file(s) for s in services}, self.nodes.count,
                                     self.slotted())
        out: dict[int, set[str]] = {n.slot: {f"pgchaos/haproxy:{tag}"} for n in self.nodes.nodes}
        for name, svc in services.items():
            ref = re.sub(r"\$\{PGCHAOS_IMAGE_TAG[^}]*\}", tag, str(svc.get("image", "")))
            ref = substitute(ref, env or {})
            if not ref or "$" in ref:
                continue
            pinned = [c for c in placement.get(name, {}).get("placement", {}).get("constraints", [])
                      if c.startswith(f"node.labels.{SLOT_LABEL}==")]
            for slot in out:
                if not pinned or pinned[0].endswith(f"=={slot}"):
                    out[slot].add(ref)
        return {slot: sorted(refs) for slot, refs in out.items()}

    def tag_image(self, base: str, target: str) -> None:
        """The tag on **every node that has the image**: a task runs on a node only with its
        image there (``--no-resolve-image``: no registry), so a tag made on the manager alone
        would leave a rolling update's tasks on the other hosts rejected ("No such image").
        Nothing to remove after: the nodes go with the run. Not on an attached swarm (the
        tag would stay on the user's hosts)."""
        if not self.provisioned:
            raise PgchaosError(f"a second image tag ({target}): not offered on an attached swarm (pgchaos "
                               "leaves nothing on hosts it does not run)")
        tagged = []
        for node in self.nodes.nodes:
            if node.name in self.avoid or not self.nodes.answers(node):
                continue
            try:
                self.nodes.client(node).images.get(base).tag(target)
            except docker.errors.ImageNotFound:
                continue  # nothing of this image runs there (pinned elsewhere)
            tagged.append(node.name)
        if not tagged:
            raise PgchaosError(f"no node of {self.project} has {base} to tag as {target}")

    # -- lifecycle -----------------------------------------------------------------------------
    def up(self, timeout_s: float = 180.0) -> None:
        """Nodes and their swarm, the images loaded into every node, the stack deployed
        through a manager, the inner and outer edges started."""
        if not self.provisioned:
            raise PgchaosError(f"refusing to deploy {self.project}: it is attached (pgchaos deploys nothing "
                               "on a swarm it did not create)")
        t0 = time.monotonic()
        labels = self._labels_from_override()
        self.progress(f"starting {self.nodes.count} swarm nodes (Docker-in-Docker)")
        self.nodes.up(labels)
        tag = self._env().get("PGCHAOS_IMAGE_TAG", "latest")
        refs = self.image_refs(tag, self._env())
        said = "; ".join(f"node{slot}: {', '.join(r.split(':')[0] for r in rs)}" for slot, rs in refs.items())
        self.progress(f"docker save | docker load into the nodes: {said}")
        self.nodes.load_images(refs)
        self.timings.update(self.nodes.timings)
        super().up(timeout_s)
        self.timings["deployed_s"] = round(time.monotonic() - t0, 1)
        if self.state_dir is not None:
            (self.state_dir / "swarm-nodes-timings.json").write_text(json.dumps(self.timings))
        self.progress(f"swarm nodes: {self.timings}")

    def down(self, timeout: float = 120.0) -> None:
        """The outer edge, then the nodes with everything on them (their volumes, their network)."""
        if not self.provisioned:
            return
        run = self._labels_from_override().get(RUN_LABEL) if self.override_file is not None else None
        edge = self._edge_container()
        if edge is not None and (run is None or edge.labels.get(RUN_LABEL) == run):
            with contextlib.suppress(docker.errors.APIError):
                edge.remove(force=True)
        self.nodes.down(run)

    # -- edges -----------------------------------------------------------------------------------
    @property
    def inner_edge_name(self) -> str:
        return f"{self.project}-inner-edge"

    def outer_edge_config(self) -> str:
        """HAProxy (TCP) on this machine: each host port to every node's inner edge."""
        lines = ["# pgchaos outer edge: host ports on 127.0.0.1 -> the swarm nodes' inner edges (TCP)",
                 "global", "    maxconn 4000", "    log stdout format raw local0 warning", "",
                 "defaults", "    log global", "    mode tcp", "    retries 2", "    option redispatch",
                 "    timeout connect 1s", "    timeout client 30m", "    timeout server 30m",
                 "    timeout check 1s", "",
                 "resolvers docker", "    nameserver dns 127.0.0.11:53", "    hold valid 1s",
                 "    hold obsolete 1s", "    hold nx 1s", "    timeout resolve 1s", ""]
        for svc, port, edge, _ in self.edge_routes():
            lines += [f"listen {svc}-{port}", f"    bind *:{edge}", "    balance first",
                      "    default-server inter 1s fall 2 rise 1 on-marked-down shutdown-sessions "
                      "resolvers docker init-addr last,libc,none resolve-prefer ipv4"]
            lines += [f"    server {n.name} {n.name}:{edge} check" for n in self.nodes.nodes]
            lines.append("")
        return "\n".join(lines)

    def start_inner_edge(self, node: Node, image: str) -> None:
        """The swarm engine's edge (HAProxy to the services' tasks) as a plain container on
        one node, on the stack's overlay, its ports published inside that node."""
        assert self.state_dir is not None
        cfg = self.state_dir / "edge-haproxy.cfg"
        client = self.nodes.client(node)
        with contextlib.suppress(docker.errors.NotFound):
            old = client.containers.get(self.inner_edge_name)
            old.reload()
            if old.status == "running":
                return
            old.remove(force=True)
        ports = [a for _, _, edge, _ in self.edge_routes() for a in ("-p", f"{edge}:{edge}")]
        _run(["docker", "run", "-d", "--name", self.inner_edge_name, "--network", self.network_name,
              "--memory", "64m", "--label", f"{OWNER_LABEL}=pgchaos", "-v", f"{cfg}:/etc/haproxy/haproxy.cfg:ro",
              *ports, image], what=f"docker run (inner edge on {node.name})",
             env={**os.environ, "DOCKER_HOST": node.endpoint})

    def start_edge(self, labels: dict[str, str], image_tag: str) -> None:
        if self.state_dir is None:
            raise PgchaosError("the swarm edge needs the run's state folder")
        image = f"pgchaos/haproxy:{image_tag}"
        (self.state_dir / "edge-haproxy.cfg").write_text(self.edge_config())
        for node in self.nodes.nodes:
            self.start_inner_edge(node, image)
        cfg = self.state_dir / "outer-edge-haproxy.cfg"
        cfg.write_text(self.outer_edge_config())
        cmd = ["docker", "run", "-d", "--name", self.edge_name, "--network", self.nodes.network_name,
               "--memory", "64m", "-v", f"{cfg}:/etc/haproxy/haproxy.cfg:ro"]
        for k, v in {**labels, ENGINE_LABEL: "swarm-nodes", OUTER_EDGE_LABEL: self.project,
                     "com.docker.compose.project": self.project}.items():
            cmd += ["--label", f"{k}={v}"]
        for _, _, edge, host in self.edge_routes():
            cmd += ["-p", f"127.0.0.1:{host or ''}:{edge}"]
        _run([*cmd, image], what="docker run (outer edge)")

    def ensure_inner_edges(self) -> None:
        """Every answering node runs its inner edge (after a node came back); none attached."""
        if not self.provisioned:
            return
        tag = self._env().get("PGCHAOS_IMAGE_TAG", "latest")
        for node in self.nodes.nodes:
            if self.nodes.answers(node):
                with contextlib.suppress(PgchaosError, docker.errors.APIError):
                    self.start_inner_edge(node, f"pgchaos/haproxy:{tag}")

    def _edge_container(self) -> Any | None:
        if not isinstance(self.nodes, NodeSet):  # attached: the host ports are the manifest's
            return None
        found = self.nodes.host.containers.list(
            all=True, filters={"label": [f"{OUTER_EDGE_LABEL}={self.project}", f"{OWNER_LABEL}=pgchaos"]},
            ignore_removed=True)
        return found[0] if found else None

    def check_free(self) -> None:
        if self._edge_container() is not None:
            raise PgchaosError(f"a container named {self.edge_name} already exists")
        super().check_free()

    def owns(self, container: Any) -> bool:
        labels = container.labels
        if not self.provisioned:  # a task of the attached stack
            return labels.get(NAMESPACE_LABEL) == self.project
        if labels.get(OWNER_LABEL) != "pgchaos":
            return False
        return labels.get(NAMESPACE_LABEL) == self.project or labels.get(OUTER_EDGE_LABEL) == self.project \
            or labels.get(EDGE_LABEL) == self.project

    # -- tasks on nodes --------------------------------------------------------------------------
    def node_names(self) -> dict[str, str]:
        """Swarm node ID -> hostname (= the node container's name)."""
        try:
            return {n.id: n.attrs["Description"]["Hostname"] for n in self.docker.nodes.list()}
        except (docker.errors.APIError, requests.RequestException, PgchaosError):  # a swarm re-electing
            return {}

    def node_states(self) -> dict[str, dict[str, str]]:
        """Hostname -> {"state": ready|down|…, "availability": active|drain|pause, "reachability"}."""
        out: dict[str, dict[str, str]] = {}
        with contextlib.suppress(docker.errors.APIError, requests.RequestException, PgchaosError):
            for n in self.docker.nodes.list():
                a = n.attrs
                out[a["Description"]["Hostname"]] = {
                    "state": (a.get("Status") or {}).get("State", "?"),
                    "availability": (a.get("Spec") or {}).get("Availability", "?"),
                    "reachability": (a.get("ManagerStatus") or {}).get("Reachability", "")}
        return out

    def node_of(self, service: str) -> Node:
        """The node that runs the service's current task."""
        names = self.node_names()
        for task in self.tasks(service):
            if (task.get("Status") or {}).get("State") == "running" and task.get("NodeID") in names:
                return self.nodes.by_name(names[task["NodeID"]])
        raise PgchaosError(f"{self.swarm_service(service)}: no running task on any node")

    def placement(self) -> dict[str, str]:
        """Short service name (a slot member's name) -> hostname of the node running its task
        (running tasks only; further replicas of an unslotted service as `name.SLOT`)."""
        names = self.node_names()
        services = self._services_by_id()
        out: dict[str, str] = {}
        for task in sorted(self.docker.api.tasks(filters={"desired-state": "running"}),
                           key=lambda t: t.get("Slot") or 0):
            if task.get("ServiceID") in services and (task.get("Status") or {}).get("State") == "running":
                short = services[task["ServiceID"]].removeprefix(f"{self.project}_")
                out[self.member_key(short, task.get("Slot"), out)] = names.get(task["NodeID"], "?")
        return out

    def containers(self) -> dict[str, Any]:
        """Service name -> container of its current task, looked up on the node that runs it."""
        names = self._services_by_id()
        if not names:
            return {}
        try:
            tasks = self.docker.api.tasks(filters={"desired-state": "running"})
        except docker.errors.APIError:
            return {}
        current = {t["ID"]: t for t in tasks if t.get("ServiceID") in names}
        found: list[Any] = []
        for node in self.nodes.nodes:
            if not self.nodes.answers(node):
                continue
            with contextlib.suppress(Exception):
                here = self.nodes.client(node).containers.list(
                    all=True, filters={"label": f"{NAMESPACE_LABEL}={self.project}"}, ignore_removed=True)
                for c in here:
                    self._where[c.id] = node.endpoint
                found += here
        out: dict[str, Any] = {}
        prefix = f"{self.project}_"
        for c in sorted(found, key=lambda c: current.get(c.labels.get(TASK_LABEL, ""), {}).get("Slot") or 0):
            task = current.get(c.labels.get(TASK_LABEL, ""))
            if task is None:
                continue
            short = c.labels.get(SWARM_SERVICE_LABEL, "").removeprefix(prefix)
            out[self.member_key(short, task.get("Slot"), out)] = c
        return out

    def exec(self, service: str, cmd: list[str], user: str | None = None,
             timeout: float = 60.0) -> tuple[int, str]:
        """Run a command in a service's task container, on its node's engine."""
        container = self.container(service)
        args = ["docker", "exec"] + (["-u", user] if user else []) + [container.id, *cmd]
        env = {**os.environ, "DOCKER_HOST": self._where.get(container.id, self.manager().endpoint)}
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return 124, f"timed out after {timeout:.0f} s"
        return proc.returncode, proc.stdout + proc.stderr

    def exec_everywhere(self, service: str, cmd: list[str], user: str | None = None) -> list[tuple[str, int, str]]:
        """Run a command in every running container of a service on every node whose engine
        answers, without asking the managers: a node cut off from them still runs its tasks,
        which the managers may have written off (the split-brain probe looks there too).
        (node, exit code, output) per container."""
        out: list[tuple[str, int, str]] = []
        label = f"{SWARM_SERVICE_LABEL}={self.swarm_service(service)}"
        slot = self.task_of(service)
        task_prefix = f"{self.swarm_service(service)}.{slot[1]}." if slot else ""
        for node in self.nodes.nodes:
            if not self.nodes.answers(node):
                continue
            with contextlib.suppress(docker.errors.APIError, docker.errors.NotFound):
                for c in self.nodes.client(node).containers.list(filters={"label": label, "status": "running"}):
                    if not c.labels.get(TASK_NAME_LABEL, "").startswith(task_prefix):
                        continue
                    res = c.exec_run(cmd, user=user or "")
                    out.append((node.name, res.exit_code if res.exit_code is not None else 1,
                                (res.output or b"").decode(errors="replace")))
        return out

    def heal_all(self, services: Sequence[str] | None = None) -> None:
        """Every node running, connected and active, inner edges up; then the swarm engine's heal.
        Attached: only the nodes pgchaos drained are made active again."""
        for node in self.nodes.nodes:
            with contextlib.suppress(PgchaosError, docker.errors.APIError):
                self.nodes.start(node)
                self.nodes.connect(node)
        self.avoid.clear()
        states = self.node_states()
        for name, st in states.items():
            if st["availability"] != "active" and (self.provisioned or name in self.drained):
                _run(["docker", "node", "update", "--availability", "active", name], env=self.cli_env(),
                     what="docker node update --availability active", check=False)
        self.ensure_inner_edges()
        super().heal_all(services)

    def health_checks(self) -> list[HealthCheck]:
        """The swarm engine's, plus placement on several hosts."""
        return [*super().health_checks(), placement_check(self.manifest, self.placement)]
