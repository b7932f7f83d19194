"""`--attach` on a swarm someone else deployed (`--engine swarm-nodes`, the manifest's
`[swarm]`), without Docker: the table's validation as one line naming the key; the
capabilities an attached swarm offers; `find` refusing a stack that is not there, one
without the manifest's services, a task on a node with no engine named; the host
ports from the manifest; host faults refused; nothing removed on teardown. The
managers' engines are fakes of docker-py's shape (the live test attaches for real:
tests/test_swarm_nodes_live.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from swarm_attach import attach_manifest
from test_manifest import MINIMAL as BASE_MANIFEST
from test_manifest import write

from harness.engines.base import EngineContext
from harness.engines.swarm import deployment as swarm_deployment
from harness.engines.swarm.deployment import NAMESPACE_LABEL
from harness.engines.swarm_nodes import deployment as nodes_deployment
from harness.engines.swarm_nodes import faults as nodes_faults
from harness.engines.swarm_nodes.deployment import SwarmNodesDeployment
from harness.errors import PgchaosError
from harness.nemesis.faults import CATALOGUE
from harness.stack.manifest import ManifestError, load_manifest
from harness.stack.spec import Ports, StackSpec
from harness.stack.stack import mode_capabilities

REPO = Path(__file__).resolve().parents[1]
STACK = "mesh"
MEMBERS = ["coordinator-1", "coordinator-2", "coordinator-3", "worker-1", "worker-2"]
PORTS = {**{f"{m}:5432": 30001 + i for i, m in enumerate(MEMBERS)},
         **{f"{m}:8008": 30101 + i for i, m in enumerate(MEMBERS[:3])}}
NODES = {"host-a": "unix:///nowhere/a.sock", "host-b": "tcp://host-b:2376"}
SERVICES = [*MEMBERS, "etcd", "haproxy", "pgbouncer", "toxiproxy", "prometheus", "alertmanager", "alert-receiver",
            "postgres-exporter"]  # the last one the manifest does not name: a stack may hold more
MINIMAL = BASE_MANIFEST + """
[swarm]
stack = "shop"
managers = ["tcp://host-a:2376", "ssh://ops@host-b"]
[swarm.nodes]
host-a = "tcp://host-a:2376"
host-c = "unix:///run/c/docker.sock"
[swarm.ports]
"p1:5432" = 15432
"p1:8008" = 18008
"p2:5432" = 25432
"p2:8008" = 28008
"lb:5000" = 15000
"""


def test_the_swarm_table_is_read(tmp_path: Path) -> None:
    swarm = load_manifest(write(tmp_path, MINIMAL)).swarm
    assert swarm is not None and swarm.stack == "shop"
    assert swarm.managers == ("tcp://host-a:2376", "ssh://ops@host-b")
    assert swarm.nodes == {"host-a": "tcp://host-a:2376", "host-c": "unix:///run/c/docker.sock"}
    assert swarm.ports[("p2", 8008)] == 28008 and swarm.ports[("lb", 5000)] == 15000
    assert load_manifest(write(tmp_path, MINIMAL[:MINIMAL.index("[swarm]")])).swarm is None


@pytest.mark.parametrize(("change", "needle"), [
    (lambda t: t.replace('"tcp://host-a:2376", "ssh', '"http://host-a:2376", "ssh'),
     "swarm.managers[0]: 'http://host-a:2376' is not a Docker endpoint"),
    (lambda t: t.replace('managers = ["tcp://host-a:2376", "ssh://ops@host-b"]', "managers = []"),
     "swarm.managers: needs at least one manager"),
    (lambda t: t.replace('managers = ["tcp://host-a:2376", "ssh://ops@host-b"]\n', ""),
     "swarm.managers: needs at least one manager, e.g. [\"tcp://host-a:2376\"] (or DOCKER_HOST set to one)"),
    (lambda t: t.replace('host-c = "unix:///run/c/docker.sock"', 'host-c = "host-c:2376"'),
     "swarm.nodes.host-c: 'host-c:2376' is not a Docker endpoint"),
    (lambda t: t.replace('"p2:8008" = 28008\n', ""), 'swarm.ports: missing "p2:8008"; add "p2:8008" ='),
    (lambda t: t.replace('"lb:5000"', '"nope:5000"'), "swarm.ports.'nope:5000': keys are \"SERVICE:PORT\""),
    (lambda t: t.replace('"lb:5000" = 15000', '"lb:5000" = 0'), "swarm.ports.'lb:5000': 0 is not a port"),
    (lambda t: t.replace('stack = "shop"', 'stack = "my shop"'), "swarm.stack: 'my shop' is not a stack name"),
    (lambda t: t.replace('stack = "shop"', 'stack = "shop"\nmanager = "tcp://x:1"'),
     "unknown key 'swarm.manager'; valid here: managers, nodes, ports, stack"),
])
def test_a_bad_swarm_table_is_one_line_naming_the_key(tmp_path: Path, change, needle: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    with pytest.raises(ManifestError) as err:
        load_manifest(write(tmp_path, change(MINIMAL)))
    assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_managers_default_to_docker_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real multi-host user's DOCKER_HOST (the manager the docker CLI talks to) stands for
    `managers` when the table leaves it out; a bad one is named in one line."""
    text = MINIMAL.replace('managers = ["tcp://host-a:2376", "ssh://ops@host-b"]\n', "")
    monkeypatch.setenv("DOCKER_HOST", "ssh://ops@manager-1")
    assert load_manifest(write(tmp_path, text)).swarm.managers == ("ssh://ops@manager-1",)
    assert load_manifest(write(tmp_path, MINIMAL)).swarm.managers[0] == "tcp://host-a:2376"  # the table wins
    monkeypatch.setenv("DOCKER_HOST", "manager-1:2376")
    with pytest.raises(ManifestError, match="swarm.managers: not given, and DOCKER_HOST='manager-1:2376' is not"):
        load_manifest(write(tmp_path, text))


def test_an_attached_swarm_offers_drain_but_not_host_crash(tmp_path: Path) -> None:
    manifest = load_manifest(attach_manifest(tmp_path, STACK, [NODES["host-a"]], NODES, PORTS))
    provisioned = mode_capabilities(manifest, False, "swarm-nodes")
    attached = mode_capabilities(manifest, True, "swarm-nodes")
    assert provisioned["node-control"] == 1 and "node-control" not in attached
    assert attached["swarm-nodes"] == attached["swarm"] == 1  # drain and the swarm's own faults stay
    with pytest.raises(PgchaosError, match="--attach works with --engine compose or swarm-nodes only"):
        StackSpec(engine="swarm", attach=STACK).validate()


# -- a manager's engine, of docker-py's shape ----------------------------------------------------
class FakeManager:
    """A swarm manager's engine: services of stacks, tasks on nodes (`where`: service ->
    the hostname of the node running its task; absent: no running task)."""

    def __init__(self, stacks: dict[str, list[str]], where: dict[str, str], hostname: str = "host-a") -> None:
        self.hostname = hostname
        self._services = [self._service(stack, short) for stack, shorts in stacks.items() for short in shorts]
        self._where = where
        self.availability = dict.fromkeys(sorted(set(where.values()) | {hostname}), "active")
        self.nodes = SimpleNamespace(list=lambda: [SimpleNamespace(id=f"n-{h}", attrs={
            "Description": {"Hostname": h}, "Status": {"State": "ready"}, "Spec": {"Availability": a}})
            for h, a in self.availability.items()])
        self.services = SimpleNamespace(list=self._list)
        self.api = SimpleNamespace(tasks=self._tasks)

    @staticmethod
    def _service(stack: str, short: str) -> Any:
        return SimpleNamespace(id=f"id-{stack}-{short}", name=f"{stack}_{short}", attrs={"Spec": {
            "Name": f"{stack}_{short}", "Labels": {NAMESPACE_LABEL: stack},
            "Mode": {"Replicated": {"Replicas": 1}},
            "TaskTemplate": {"ContainerSpec": {"Image": "pgchaos/postgres:t@sha256:0", "Hostname": ""}}}})

    def _list(self, filters: dict[str, Any] | None = None) -> list[Any]:
        label = (filters or {}).get("label", "")
        return [s for s in self._services
                if not label or f"{NAMESPACE_LABEL}={s.attrs['Spec']['Labels'][NAMESPACE_LABEL]}" == label]

    def _tasks(self, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        out = []
        for s in self._services:
            short = s.name.split("_", 1)[1]
            if short in self._where:
                out.append({"ID": f"t-{short}", "ServiceID": s.id, "NodeID": f"n-{self._where[short]}", "Slot": 1,
                            "Status": {"State": "running"}, "DesiredState": "running"})
        return out

    def ping(self) -> bool:
        return True

    def info(self) -> dict[str, Any]:
        return {"Name": self.hostname}


def attached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: FakeManager,
             nodes: dict[str, str] | None = None) -> SwarmNodesDeployment:
    manifest = load_manifest(attach_manifest(tmp_path, STACK, [NODES["host-a"]], NODES if nodes is None else nodes,
                                             PORTS))
    dep = SwarmNodesDeployment.create(EngineContext(
        run_id="r", manifest=manifest, ports=Ports(haproxy_primary=25000), state_dir=tmp_path,
        env_file=tmp_path / "e", override_file=tmp_path / "o", attach="", progress=lambda _: None))
    assert isinstance(dep, SwarmNodesDeployment) and not dep.provisioned
    monkeypatch.setattr(dep.nodes, "client", lambda node: engine)
    monkeypatch.setattr(dep.nodes, "answers", lambda node: True)
    return dep


def everywhere(services: list[str]) -> dict[str, str]:
    return {s: ("host-a" if i % 2 else "host-b") for i, s in enumerate(services)}


def one_line(err: pytest.ExceptionInfo[PgchaosError], needle: str) -> None:
    assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_attach_refuses_a_stack_that_is_not_deployed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dep = attached(tmp_path, monkeypatch, FakeManager({"other": ["web"]}, {}))
    assert dep.project == STACK  # the manifest's [swarm] stack, --attach naming none
    with pytest.raises(PgchaosError) as err:
        dep.find(dep.manifest.services())
    one_line(err, "--attach: no swarm stack 'mesh' on unix:///nowhere/a.sock; stacks there: other")


def test_attach_refuses_a_stack_without_the_manifests_services(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    shorts = [s for s in SERVICES if s != "coordinator-3"]
    dep = attached(tmp_path, monkeypatch, FakeManager({STACK: shorts}, everywhere(shorts)))
    with pytest.raises(PgchaosError) as err:
        dep.find(dep.manifest.services())
    one_line(err, "service 'coordinator-3' is not in swarm stack mesh (1 of the manifest's missing)")


def test_attach_refuses_a_task_on_a_node_it_cannot_reach(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    where = {**everywhere(SERVICES), "worker-2": "host-c"}
    dep = attached(tmp_path, monkeypatch, FakeManager({STACK: SERVICES}, where))
    with pytest.raises(PgchaosError) as err:
        dep.find(dep.manifest.services())
    one_line(err, "swarm node 'host-c' runs tasks of mesh, but the manifest's [swarm.nodes] names no engine")


def test_attach_refuses_a_service_without_a_running_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    where = {k: v for k, v in everywhere(SERVICES).items() if k != "etcd"}
    dep = attached(tmp_path, monkeypatch, FakeManager({STACK: SERVICES}, where))
    with pytest.raises(PgchaosError) as err:
        dep.find(dep.manifest.services())
    one_line(err, "--attach: mesh_etcd has no running task")
    dep.find(dep.manifest.services(), all_running=False)  # `heal` and `status` still find it


def test_an_attached_stack_is_found_reached_on_the_manifests_ports_and_never_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeManager({STACK: SERVICES, "other": ["web"]}, everywhere(SERVICES))
    dep = attached(tmp_path, monkeypatch, engine, nodes={"host-b": NODES["host-b"]})
    ran: list[list[str]] = []
    for module in (swarm_deployment, nodes_deployment, nodes_faults):  # every `docker` command they run
        monkeypatch.setattr(module, "_run", lambda cmd, **kw: ran.append(cmd))
    dep.find(dep.manifest.services())
    assert {n.name for n in dep.nodes.nodes} == {"host-a", "host-b"}  # the manager named its own host
    assert dep.endpoint("coordinator-2", 5432) == ("127.0.0.1", PORTS["coordinator-2:5432"])
    assert dep.endpoint("haproxy", 5000) == ("127.0.0.1", 25000)  # not in [swarm.ports]: PGCHAOS_*_PORT
    with pytest.raises(PgchaosError, match=r"names no 127.0.0.1 port for etcd:2379"):
        dep.endpoint("etcd", 2379)
    checks = {c.name: c for c in dep.health_checks()}
    assert checks["swarm_replicas"].ok, checks["swarm_replicas"].detail  # no edge of ours expected
    foreign = SimpleNamespace(labels={NAMESPACE_LABEL: "other"})
    assert dep.owns(SimpleNamespace(labels={NAMESPACE_LABEL: STACK})) and not dep.owns(foreign)
    with pytest.raises(PgchaosError, match="refusing to deploy mesh: it is attached"):
        dep.up()
    with pytest.raises(PgchaosError, match="not offered on an attached swarm"):
        dep.rolled_tag("pgchaos/postgres:t")
    dep.down()
    nem = SimpleNamespace(stack=SimpleNamespace(deployment=dep), timeout_multiplier=1.0)
    for fault in ("node-crash", "node-stop", "node-cut"):
        with pytest.raises(PgchaosError, match=f"{fault} of host-.: not offered on an attached swarm"):
            CATALOGUE[fault].inject(nem, "coordinator-1", {})
    assert ran == []  # no docker command: no stack deploy or rm, no node update, nothing


def test_a_drain_on_an_attached_swarm_is_undone_on_its_node_only(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """node-drain goes through a manager; its repair makes active again the node it drained,
    not a node its owner had drained before."""
    where = {**everywhere(SERVICES), "prometheus": "host-c"}
    engine = FakeManager({STACK: SERVICES}, where)
    engine.availability["host-c"] = "drain"  # the owner's own maintenance
    dep = attached(tmp_path, monkeypatch, engine, nodes={**NODES, "host-c": "unix:///nowhere/c.sock"})
    ran: list[list[str]] = []

    def run(cmd: list[str], **kw: Any) -> None:
        ran.append(cmd)
        if cmd[:4] == ["docker", "node", "update", "--availability"]:
            engine.availability[cmd[5]] = cmd[4]

    monkeypatch.setattr(nodes_faults, "_run", run)
    nem = SimpleNamespace(stack=SimpleNamespace(deployment=dep), timeout_multiplier=1.0)
    params: dict[str, Any] = {}
    CATALOGUE["node-drain"].inject(nem, "coordinator-1", params)
    assert ran == [["docker", "node", "update", "--availability", "drain", "host-b"]]
    CATALOGUE["node-drain"].repair(nem, "coordinator-1", params)
    assert ran[1:] == [["docker", "node", "update", "--availability", "active", "host-b"]]
    assert engine.availability == {"host-a": "active", "host-b": "active", "host-c": "drain"}


def test_attach_with_no_manager_answering_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = attach_manifest(tmp_path, STACK, [f"unix://{tmp_path}/no.sock"], {}, PORTS)
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "status", "--engine", "swarm-nodes",
                           "--manifest", str(path), "--attach"], capture_output=True, text=True, cwd=REPO,
                          timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"no manager of swarm {STACK} answers (unix://{tmp_path}/no.sock)" in proc.stderr
