"""Swarm nodes on one machine: Docker-in-Docker containers that act as hosts.

Each node is a container of `pgchaos/swarm-node` (Debian's `docker.io` and
`docker-cli`, built from `compose/swarm-nodes/`) with its own volume for
`/var/lib/docker` (overlay2) and its engine on a unix socket in a folder of the
run's state folder, so pgchaos reaches every node's engine without a TCP port.
The nodes share one bridge network of their own; node 1 initialises the swarm
and the others join it as managers. The run's state folder and the compose
folder are bound into every node at the same paths: bind mounts of the stack
file (configs, loop-mounted data directories) resolve on whichever node a task
lands, as they would on hosts sharing those paths.

`--privileged` is refused on this kind of host (`unable to apply caps`); the
flags in :data:`NODE_FLAGS` work, with `/sys` and each cgroup hierarchy
remounted read-write by the node's entrypoint.

Everything here carries the run's ownership labels plus the project label
(the stack's name), so `down`, `pgchaos gc` and `remove_project_resources`
remove nodes, their volumes and their network like any project of ours.

`AttachedNodes` is the same view of a swarm someone else runs (the manifest's
`[swarm]`): managers and nodes are endpoints only; nothing is created or
removed, and a host cannot be powered off or cut off (those faults refuse).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from harness import assets
from harness.engines.base import OWNER_LABEL, PROJECT_LABEL, RUN_LABEL
from harness.errors import PgchaosError

NODE_IMAGE = "pgchaos/swarm-node"
NODE_LABEL = "io.pgchaos.swarm-node"  # value: the node's slot (1..N)
SLOT_LABEL = "io.pgchaos.slot"  # Swarm node label: the slot placement constraints name
ENGINE_LABEL = "io.pgchaos.engine"
DEFAULT_NODES = 3
NODE_FLAGS = [
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined", "--device-cgroup-rule", "a *:* rwm",
    "--cgroupns=private", "--init",
]


def node_count() -> int:
    """PGCHAOS_SWARM_NODES (default 3, at least 1)."""
    raw = os.environ.get("PGCHAOS_SWARM_NODES", str(DEFAULT_NODES))
    if not raw.isdigit() or int(raw) < 1:
        raise PgchaosError(f"PGCHAOS_SWARM_NODES={raw!r}: give a number of nodes (1 or more)")
    return int(raw)


def node_image_dir() -> Path:
    return assets.compose_dir() / "swarm-nodes"


def node_image_tag() -> str:
    """`pgchaos/swarm-node:<hash of its build folder>`: rebuilt only when it changes."""
    digest = hashlib.sha256()
    for path in sorted(node_image_dir().iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return f"{NODE_IMAGE}:{digest.hexdigest()[:12]}"


def _cli(cmd: list[str], what: str, timeout: float = 120.0, host: str | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI against the host engine, or a node's (`host`)."""
    env = {**os.environ, **({"DOCKER_HOST": host} if host else {})}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise PgchaosError(f"{what} timed out after {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-2:]
        raise PgchaosError(f"{what} failed: {' | '.join(tail) or f'exit {proc.returncode}'}")
    return proc


@dataclass(frozen=True)
class Node:
    """One swarm node: its slot, container name (= hostname) and engine endpoint (a unix
    socket in `socket_dir`, or `url` for a host of an attached swarm)."""

    slot: int
    name: str
    socket_dir: Path = Path()
    url: str = ""

    @property
    def endpoint(self) -> str:
        return self.url or f"unix://{self.socket_dir / 'docker.sock'}"


def engine_client(endpoint: str, timeout: int = 15) -> docker.DockerClient:
    """A client of one engine: a unix socket directly; tcp:// and ssh:// as `DOCKER_HOST`
    would be read (TLS from DOCKER_TLS_VERIFY/DOCKER_CERT_PATH, ssh through the ssh client)."""
    if endpoint.startswith("unix://"):
        return docker.DockerClient(base_url=endpoint, timeout=timeout)
    return docker.DockerClient.from_env(environment={**os.environ, "DOCKER_HOST": endpoint}, timeout=timeout,
                                        use_ssh_client=endpoint.startswith("ssh://"))


class Engines:
    """Clients of the nodes' engines, shared by a provisioned and an attached node set."""

    project: str
    nodes: list[Node]

    def __init__(self) -> None:
        self._clients: dict[str, docker.DockerClient] = {}

    @property
    def count(self) -> int:
        return len(self.nodes)

    @property
    def managers(self) -> list[Node]:
        """The engines asked to manage the swarm, in order."""
        return self.nodes

    def client(self, node: Node) -> docker.DockerClient:
        """A client of the node's own engine (short timeouts: a dead node must not stall callers)."""
        if node.name not in self._clients:
            self._clients[node.name] = engine_client(node.endpoint)
        return self._clients[node.name]

    def answers(self, node: Node) -> bool:
        """The node's engine answers on its endpoint right now."""
        try:
            return bool(self.client(node).ping())
        except Exception:  # noqa: BLE001 - a dead node: refused, missing socket, timeout
            return False


class NodeSet(Engines):
    """The run's N Docker-in-Docker swarm nodes (all managers)."""

    provisioned = True

    def __init__(self, project: str, state_dir: Path, count: int, binds: list[Path],
                 progress: Callable[[str], None] = print) -> None:
        super().__init__()
        self.project = project
        self.state_dir = state_dir
        self.binds = binds
        self.progress = progress
        self.nodes = [Node(i, f"{project}-node{i}", state_dir / "nodes" / f"node{i}") for i in range(1, count + 1)]
        self._host: docker.DockerClient | None = None
        self.timings: dict[str, float] = {}

    @property
    def network_name(self) -> str:
        return f"{self.project}-nodes"

    def volume_name(self, node: Node) -> str:
        return f"{node.name}-docker"

    @property
    def host(self) -> docker.DockerClient:
        if self._host is None:
            from harness.engines.base import docker_client

            self._host = docker_client()
        return self._host

    def by_name(self, name: str) -> Node:
        for node in self.nodes:
            if name in (node.name, f"node{node.slot}", str(node.slot)):
                return node
        raise PgchaosError(f"no swarm node {name!r}; have: {', '.join(n.name for n in self.nodes)}")

    def container(self, node: Node) -> Any:
        """The node's container on the host engine (refused when it is not ours)."""
        try:
            found = self.host.containers.get(node.name)
        except docker.errors.NotFound:
            raise PgchaosError(f"swarm node {node.name} does not exist") from None
        if found.labels.get(OWNER_LABEL) != "pgchaos" or found.labels.get(PROJECT_LABEL) != self.project:
            raise PgchaosError(f"refusing to touch {node.name}: not a node of {self.project}")
        return found

    # -- lifecycle ------------------------------------------------------------------------
    def ensure_image(self) -> str:
        tag = node_image_tag()
        if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode != 0:
            self.progress(f"building {tag} (docker.io + docker-cli from Debian)")
            _cli(["docker", "build", "-q", "-t", tag, str(node_image_dir())], "swarm node image build",
                 timeout=900)
        return tag

    def check_free(self) -> None:
        taken = [n.name for n in self.nodes
                 if self.host.containers.list(all=True, filters={"name": f"^{n.name}$"})]
        if taken or self.host.networks.list(names=[self.network_name]):
            raise PgchaosError(f"swarm nodes of {self.project!r} already exist ({', '.join(taken) or 'network'}); "
                               "remove them (pgchaos down / gc) or name another stack")

    def up(self, labels: dict[str, str]) -> None:
        """Nodes started, engines answering, one swarm of managers, slot labels set."""
        t0 = time.monotonic()
        image = self.ensure_image()
        self.check_free()
        labels = {**labels, PROJECT_LABEL: self.project, ENGINE_LABEL: "swarm-nodes"}
        label_args = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
        _cli(["docker", "network", "create", *label_args, self.network_name], "docker network create (nodes)")
        for node in self.nodes:
            node.socket_dir.mkdir(parents=True, exist_ok=True)
            _cli(["docker", "volume", "create", *label_args, self.volume_name(node)],
                 "docker volume create")
            binds = [a for b in self.binds for a in ("-v", f"{b}:{b}")]
            _cli(["docker", "run", "-d", "--name", node.name, "--hostname", node.name, *NODE_FLAGS,
                  "--network", self.network_name, *label_args, "--label", f"{NODE_LABEL}={node.slot}",
                  "-v", f"{self.volume_name(node)}:/var/lib/docker",
                  "-v", f"{node.socket_dir}:/run/pgchaos-node",
                  *binds, image], f"docker run (swarm node {node.name})")
        for node in self.nodes:
            self.wait_engine(node, 60.0)
        self.timings["engines_s"] = round(time.monotonic() - t0, 1)
        first, *others = self.nodes
        self.progress(f"swarm init on {first.name}; {len(others)} manager(s) join")
        _cli(["docker", "swarm", "init", "--advertise-addr", "eth0"], "docker swarm init", host=first.endpoint)
        token = _cli(["docker", "swarm", "join-token", "-q", "manager"], "docker swarm join-token",
                     host=first.endpoint).stdout.strip()
        leader = f"{self.address(first)}:2377"
        for node in others:
            _cli(["docker", "swarm", "join", "--token", token, "--advertise-addr", "eth0", leader],
                 f"docker swarm join ({node.name})", host=node.endpoint)
        for node in self.nodes:
            _cli(["docker", "node", "update", "--label-add", f"{SLOT_LABEL}={node.slot}", node.name],
                 "docker node update --label-add", host=first.endpoint)
        self.timings["swarm_s"] = round(time.monotonic() - t0, 1)

    def address(self, node: Node) -> str:
        """The node's address on the nodes' network."""
        container = self.container(node)
        container.reload()
        nets = container.attrs["NetworkSettings"]["Networks"]
        if self.network_name not in nets:
            raise PgchaosError(f"{node.name} is not on {self.network_name}")
        return nets[self.network_name]["IPAddress"]

    def wait_engine(self, node: Node, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.answers(node):
                return
            time.sleep(0.3)
        raise PgchaosError(f"the engine of swarm node {node.name} does not answer after {timeout_s:.0f} s")

    def load_images(self, refs: dict[int, list[str]]) -> float:
        """`docker save | docker load` of each node's images (`refs`: slot -> image refs):
        images grouped by the nodes that need them, one save per group fanned out to those
        nodes, every group at once (images every node needs are saved once, not once per
        node set); the seconds it took."""
        t0 = time.monotonic()
        needed_by: dict[str, list[Node]] = {}
        for node in self.nodes:
            for ref in refs.get(node.slot, []):
                needed_by.setdefault(ref, []).append(node)
        sets: dict[tuple[str, ...], list[Node]] = {}
        by_nodes: dict[tuple[str, ...], list[str]] = {}
        for ref, nodes in sorted(needed_by.items()):
            by_nodes.setdefault(tuple(n.name for n in nodes), []).append(ref)
        for names, images in by_nodes.items():
            sets[tuple(images)] = [n for n in self.nodes if n.name in names]
        failed: list[str] = []
        threads = [threading.Thread(target=self._save_load, args=(list(images), nodes, failed), daemon=True)
                   for images, nodes in sets.items() if images]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=900)
        if failed or any(t.is_alive() for t in threads):
            raise PgchaosError(f"loading images into the swarm nodes failed: {'; '.join(failed) or 'timed out'}")
        self.timings["image_load_s"] = round(time.monotonic() - t0, 1)
        return self.timings["image_load_s"]

    @staticmethod
    def _save_load(images: list[str], nodes: list[Node], failed: list[str]) -> None:
        """One `docker save` streamed into `docker load` on each of `nodes`."""
        save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        loads = [subprocess.Popen(["docker", "load", "-q"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env={**os.environ, "DOCKER_HOST": n.endpoint})
                 for n in nodes]
        assert save.stdout is not None
        try:
            while chunk := save.stdout.read(1 << 20):
                for load in loads:
                    load.stdin.write(chunk)  # type: ignore[union-attr]
        except BrokenPipeError:
            failed.append("a node's docker load stopped reading")
        finally:
            for load in loads:
                with contextlib.suppress(BrokenPipeError):
                    load.stdin.close()  # type: ignore[union-attr]
        waits = [(save, "docker save"),
                 *((ld, f"docker load ({n.name})") for ld, n in zip(loads, nodes, strict=True))]
        for proc, what in waits:
            try:
                rc = proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = -9
            if rc != 0:
                failed.append(f"{what}: exit {rc} {(proc.stderr.read() if proc.stderr else b'').decode()[-200:]}")

    def down(self, run: str | None = None) -> None:
        """Remove the nodes, their volumes and their network (ours only; of `run` when given).
        A node's volume holds its whole image store: the volumes go at once, each with
        the CLI's own bound (an API call's 30 s is too short on a busy disk)."""
        filters = {"label": [f"{PROJECT_LABEL}={self.project}", f"{OWNER_LABEL}=pgchaos", NODE_LABEL]
                   + ([f"{RUN_LABEL}={run}"] if run else [])}
        for container in self.host.containers.list(all=True, filters=filters, ignore_removed=True):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True, v=True)
        vol_filters = {"label": [f"{PROJECT_LABEL}={self.project}", f"{OWNER_LABEL}=pgchaos"]
                       + ([f"{RUN_LABEL}={run}"] if run else [])}
        names = {self.volume_name(n) for n in self.nodes}
        ours = [v.name for v in self.host.volumes.list(filters=vol_filters) if v.name in names]
        removals = [subprocess.Popen(["docker", "volume", "rm", "-f", name], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL) for name in ours]
        for proc in removals:
            try:
                proc.wait(timeout=600)
            except subprocess.TimeoutExpired:
                proc.kill()
                self.progress("a swarm node's volume is still being removed; pgchaos gc removes what is left")
        for network in self.host.networks.list(names=[self.network_name]):
            if (network.attrs.get("Labels") or {}).get(OWNER_LABEL) == "pgchaos":
                with contextlib.suppress(docker.errors.APIError):
                    network.remove()
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                client.close()
        self._clients.clear()

    # -- what faults do to a node -------------------------------------------------------
    def kill(self, node: Node) -> None:
        self.container(node).kill()

    def stop(self, node: Node, timeout: int = 20) -> None:
        self.container(node).stop(timeout=timeout)

    def start(self, node: Node, timeout_s: float = 60.0) -> None:
        """Start a stopped node (its inner engine and swarm membership come back)."""
        container = self.container(node)
        container.reload()
        if container.status != "running":
            container.start()
        self._clients.pop(node.name, None)
        self.wait_engine(node, timeout_s)

    def network(self) -> Any:
        nets = [n for n in self.host.networks.list(names=[self.network_name]) if n.name == self.network_name]
        if not nets or (nets[0].attrs.get("Labels") or {}).get(OWNER_LABEL) != "pgchaos":
            raise PgchaosError(f"no network {self.network_name} of ours")
        return nets[0]

    def disconnect(self, node: Node) -> None:
        self.network().disconnect(self.container(node), force=True)

    def connect(self, node: Node) -> None:
        network = self.network()
        network.reload()
        container = self.container(node)
        if container.id not in {c.id for c in network.containers}:
            network.connect(container)

    def connected(self, node: Node) -> bool:
        container = self.container(node)
        container.reload()
        return self.network_name in (container.attrs["NetworkSettings"]["Networks"] or {})

    def memory_mib(self) -> dict[str, float]:
        """Each node container's memory use right now (MiB), as the host engine counts it."""
        out: dict[str, float] = {}
        for node in self.nodes:
            with contextlib.suppress(Exception):
                stats = self.container(node).stats(stream=False)
                mem = stats.get("memory_stats") or {}
                cache = (mem.get("stats") or {}).get("cache", 0)
                out[node.name] = round((mem.get("usage", 0) - cache) / 2**20, 1)
        return out


class AttachedNodes(Engines):
    """The hosts of a swarm someone else deployed, from the manifest's `[swarm]`: the
    managers' endpoints (tried in order) and each node's own engine by hostname. A manager
    given without a `[swarm.nodes]` entry is that node too, once its engine names its
    hostname. Nothing is created or removed; a host is never powered off, restarted or cut
    off (the host faults that would need it refuse)."""

    provisioned = False

    def __init__(self, project: str, managers: list[str] | tuple[str, ...], nodes: dict[str, str]) -> None:
        super().__init__()
        self.project = project
        self.nodes = [Node(i, name, url=url) for i, (name, url) in enumerate(sorted(nodes.items()), 1)]
        by_url = {n.url: n for n in self.nodes}
        self._managers = [by_url.get(url) or Node(0, url, url=url) for url in managers]
        self.timings: dict[str, float] = {}

    @property
    def managers(self) -> list[Node]:
        return self._managers

    def by_name(self, name: str) -> Node:
        """The node with this hostname: named in `[swarm.nodes]`, or a manager whose engine says so."""
        for node in self.nodes:
            if node.name == name:
                return node
        for i, manager in enumerate(self._managers):
            if manager.slot == 0 and self.answers(manager):
                with contextlib.suppress(Exception):
                    if self.client(manager).info().get("Name") == name:
                        node = Node(len(self.nodes) + 1, name, url=manager.url)
                        self._managers[i] = node
                        self._clients.pop(manager.name, None)
                        self.nodes.append(node)
                        return node
        raise PgchaosError(f"swarm node {name!r} runs tasks of {self.project}, but the manifest's [swarm.nodes] "
                           f'names no engine for it; add {name} = "tcp://{name}:2376" (or ssh://, unix://)')

    def refuse(self, what: str) -> PgchaosError:
        return PgchaosError(f"{what}: not offered on an attached swarm (pgchaos reaches its hosts' engines, "
                            "not the hosts: no power-off, restart or network cut of a host it does not run)")

    def container(self, node: Node) -> Any:
        raise self.refuse(f"the host {node.name} as a container")

    def kill(self, node: Node) -> None:
        raise self.refuse(f"node-crash of {node.name}")

    def stop(self, node: Node, timeout: int = 20) -> None:
        raise self.refuse(f"node-stop of {node.name}")

    def disconnect(self, node: Node) -> None:
        raise self.refuse(f"node-cut of {node.name}")

    def start(self, node: Node, timeout_s: float = 60.0) -> None:
        """Nothing to start: the hosts are their owner's."""

    def connect(self, node: Node) -> None:
        """Nothing to reconnect: pgchaos never cut a host off."""

    def connected(self, node: Node) -> bool:
        return True

    def down(self, run: str | None = None) -> None:
        """Nothing of the user's is removed."""

    def up(self, labels: dict[str, str]) -> None:
        raise PgchaosError(f"refusing to create swarm nodes for {self.project}: it is attached")
