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

from harness.engines.base import OWNER_LABEL, RUN_LABEL, HealthCheck
from harness.engines.swarm.deployment import (
    EDGE_LABEL,
    ENGINE_LABEL,
    NAMESPACE_LABEL,
    SWARM_SERVICE_LABEL,
    TASK_LABEL,
    TASK_NAME_LABEL,
    SwarmDeployment,
    _run,
)
from harness.engines.swarm_nodes.nodes import SLOT_LABEL, Node, NodeSet, node_count, node_image_dir, node_image_tag
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
    can_attach: ClassVar[bool] = False

    def __init__(self, stack_name: str, workdir: Path, manifest: Manifest, ports: Ports,
                 env_file: Path | None = None, override_file: Path | None = None,
                 state_dir: Path | None = None, provisioned: bool = True,
                 progress: Callable[[str], None] = print, count: int | None = None) -> None:
        super().__init__(stack_name, workdir, manifest, ports, env_file=env_file, override_file=override_file,
                         state_dir=state_dir, provisioned=provisioned, progress=progress)
        run_dir = state_dir or Path(".")
        self.nodes = NodeSet(stack_name, run_dir, count or node_count(),
                             binds=[run_dir.resolve(), workdir.resolve()], progress=progress)
        self._manager: Node | None = None
        self.avoid: set[str] = set()  # nodes a fault cut off: not asked to manage
        self._where: dict[str, str] = {}  # container id -> endpoint of its node
        self.timings: dict[str, float] = {}

    def engine_images(self) -> dict[str, Path]:
        """The node image, built beside pgchaos's images (it is FROM the same base)."""
        return {node_image_tag(): node_image_dir()}

    @classmethod
    def capabilities(cls, caps: dict[str, int]) -> dict[str, int]:
        """The swarm engine's, plus host faults ("swarm-nodes")."""
        return {**super().capabilities(caps), "swarm-nodes": 1}

    @classmethod
    def collect(cls, everything: bool, progress: Callable[[str], None]) -> list[str]:
        """Nothing of its own: the nodes, their volumes and the outer edge carry the run's
        project label, so `pgchaos gc`'s label sweep removes a dead run's; stacks on the
        host's own swarm are the swarm engine's to collect."""
        return []

    # -- the manager's engine ----------------------------------------------------------------
    def manager(self) -> Node:
        """The first node whose engine answers and that no fault cut off (the last good one first)."""
        candidates = [n for n in self.nodes.nodes if n.name not in self.avoid]
        if self._manager in candidates:
            candidates.remove(self._manager)
            candidates.insert(0, self._manager)
        for node in candidates:
            if self.nodes.answers(node):
                self._manager = node
                return node
        raise PgchaosError(f"no manager of swarm {self.project} answers "
                           f"({', '.join(n.name for n in self.nodes.nodes)})")

    @property
    def docker(self) -> docker.DockerClient:  # type: ignore[override]
        return self.nodes.client(self.manager())

    def cli_env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.manager().endpoint}

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
        Nothing to remove after: the nodes go with the run."""
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
            raise PgchaosError("--attach is not supported on the swarm-nodes engine")
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
        """Every answering node runs its inner edge (after a node came back)."""
        tag = self._env().get("PGCHAOS_IMAGE_TAG", "latest")
        for node in self.nodes.nodes:
            if self.nodes.answers(node):
                with contextlib.suppress(PgchaosError, docker.errors.APIError):
                    self.start_inner_edge(node, f"pgchaos/haproxy:{tag}")

    def _edge_container(self) -> Any | None:
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
        """Every node running, connected and active, inner edges up; then the swarm engine's heal."""
        for node in self.nodes.nodes:
            with contextlib.suppress(PgchaosError, docker.errors.APIError):
                self.nodes.start(node)
                self.nodes.connect(node)
        self.avoid.clear()
        states = self.node_states()
        for name, st in states.items():
            if st["availability"] != "active":
                _run(["docker", "node", "update", "--availability", "active", name], env=self.cli_env(),
                     what="docker node update --availability active", check=False)
        self.ensure_inner_edges()
        super().heal_all(services)

    def health_checks(self) -> list[HealthCheck]:
        """The swarm engine's, plus placement on several hosts."""
        return [*super().health_checks(), placement_check(self.manifest, self.placement)]
