"""Citus on Swarm without Docker: members that are task slots of replicated services
(`worker-3` = slot 3 of `worker`), the Citus profile's own Swarm stack chosen for the
Swarm engines, the stack file's services as the manifest's members, the edge route of
a slot member (Patroni's name picks the task), placement of replicated services, and
the images every node needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.engines.swarm.slots import SlottedService, slotted_services, task_of
from harness.engines.swarm_nodes.deployment import SwarmNodesDeployment, substitute
from harness.engines.swarm_nodes.placement import deploy_placement, placement_check, shares_a_group
from harness.stack.manifest import check_against_services
from harness.stack.spec import StackSpec

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def spec() -> StackSpec:
    return StackSpec(profile="citus", engine="swarm-nodes")


@pytest.fixture
def dep(spec: StackSpec, tmp_path: Path) -> SwarmNodesDeployment:
    return SwarmNodesDeployment("pm", spec.manifest.dir, spec.manifest, spec.ports, state_dir=tmp_path, count=3)


def test_a_slot_template_in_the_hostname_names_each_task() -> None:
    found = slotted_services({"worker": {"hostname": "worker-{{.Task.Slot}}", "deploy": {"replicas": 4}},
                              "etcd": {"image": "e"}, "pgbouncer": {"deploy": {"replicas": 3}}})
    assert set(found) == {"worker"}
    worker = found["worker"]
    assert worker.members() == ["worker-1", "worker-2", "worker-3", "worker-4"]
    assert worker.slot_of("worker-12") == 12
    assert worker.slot_of("worker-0") is None and worker.slot_of("worker-1a") is None
    assert worker.slot_of("coordinator-1") is None


def test_a_member_is_a_task_slot_only_when_no_service_has_its_name() -> None:
    slotted = {"db": SlottedService("db", "db-{{.Task.Slot}}", 2)}
    assert task_of("db-2", slotted) == ("db", 2)
    assert task_of("db", slotted) is None
    assert task_of("pgbouncer", slotted) is None


def test_the_citus_profile_has_its_own_swarm_stack(spec: StackSpec) -> None:
    assert spec.manifest_file.parts[-3:] == ("citus", "swarm", "pgchaos.toml")
    assert StackSpec(profile="citus", engine="swarm").manifest_file == spec.manifest_file
    assert StackSpec(profile="citus").manifest_file.parts[-2:] == ("citus", "pgchaos.toml")
    assert StackSpec(engine="swarm-nodes").manifest_file.parent.name == "compose"


def test_services_are_the_manifests_members(dep: SwarmNodesDeployment, spec: StackSpec) -> None:
    services = dep.services()
    members = {"coordinator-1", "coordinator-3", "worker-1", "worker-4"}
    assert members | {"pgbouncer", "haproxy", "etcd"} <= set(services)
    assert "coordinator" not in services and "worker" not in services and "worker-5" not in services
    check_against_services(spec.manifest, dep.services(every_profile=True))  # raises when one is missing
    assert dep.swarm_service("worker-3") == "pm_worker" and dep.swarm_service("pgbouncer") == "pm_pgbouncer"
    assert dep.member_key("worker", 5) == "worker-5"
    assert dep.member_key("pgbouncer", 2, {"pgbouncer": 1}) == "pgbouncer.2"


def test_the_edge_finds_a_slot_member_by_its_patroni_name(dep: SwarmNodesDeployment) -> None:
    config = dep.edge_config()
    route = config[config.index("listen worker-3-5432"):].split("\n\n", 1)[0]
    assert "server-template t 7 tasks.worker:5432 check port 8008" in route
    assert "http-check expect rstring '\"name\": *\"worker-3\"'" in route
    pooler = config[config.index("listen pgbouncer-6432"):].split("\n\n", 1)[0]
    assert "server-template t 4 pgbouncer:6432 check" in pooler and "httpchk" not in pooler


def test_replicated_members_of_one_group_go_on_distinct_nodes(dep: SwarmNodesDeployment, spec: StackSpec,
                                                               tmp_path: Path) -> None:
    manifest = spec.manifest
    assert shares_a_group(manifest, ["coordinator-1", "coordinator-2"])
    assert not shares_a_group(manifest, ["worker-1", "worker-2", "worker-5"])
    services = dep.stack_file_services()
    placed = deploy_placement(manifest, services, {s: dep.desired_in_stack_file(s) for s in services}, 3,
                              dep.slotted())
    assert placed["coordinator"] == {"placement": {"max_replicas_per_node": 1}}
    assert "worker" not in placed  # one group per task: Swarm spreads them; 4 on 3 nodes must fit
    assert placed["etcd"]["placement"]["constraints"] == ["node.labels.io.pgchaos.slot==1"]
    path = tmp_path / "override.json"
    dep.write_owner_override(path, {"io.pgchaos.owner": "pgchaos"})
    doc = json.loads(path.read_text())
    assert set(doc["services"]) == set(services)
    assert doc["services"]["coordinator"]["deploy"]["placement"] == {"max_replicas_per_node": 1}


def test_the_placement_check_reads_slot_members(spec: StackSpec) -> None:
    manifest = spec.manifest
    spread = {"coordinator-1": "n1", "coordinator-2": "n2", "coordinator-3": "n3",
              "worker-1": "n2", "worker-2": "n2", "worker-3": "n3", "worker-4": "n1"}
    assert placement_check(manifest, lambda: spread).ok
    bad = placement_check(manifest, lambda: {**spread, "coordinator-3": "n1"})
    assert not bad.ok and "coordinator-1 and coordinator-3 both on n1" in bad.detail


def test_every_node_gets_the_citus_image(dep: SwarmNodesDeployment) -> None:
    refs = dep.image_refs("T", {"PGCHAOS_CITUS_IMAGE": "pgchaos/postgres-citus:abc"})
    assert all("pgchaos/postgres-citus:abc" in r for r in refs.values())
    assert "pgchaos/etcd:T" in refs[1] and "pgchaos/etcd:T" not in refs[2]
    fallback = dep.image_refs("T", {})
    assert all("pgchaos/postgres-citus:latest" in r for r in fallback.values())


def test_variables_read_as_docker_stack_deploy_reads_them() -> None:
    env = {"A": "x", "EMPTY": ""}
    assert substitute("${A}/${A:-d}", env) == "x/x"
    assert substitute("${B:-d}:${EMPTY:-e}", env) == "d:e"
    assert substitute("${B}", env) == "${B}"


def test_heal_all_scales_members_up_but_never_down(dep: SwarmNodesDeployment, monkeypatch) -> None:
    from harness.engines.swarm.deployment import SwarmDeployment

    scaled: list[tuple[str, int]] = []
    monkeypatch.setattr(dep, "containers", lambda: {})
    monkeypatch.setattr(dep, "_edge_running", lambda: None)
    monkeypatch.setattr(dep, "scale", lambda name, n: scaled.append((name, n)))
    monkeypatch.setattr(dep, "replicas", lambda: {"worker": (5, 5), "coordinator": (2, 2), "pgbouncer": (4, 4),
                                                   "etcd": (1, 1)})
    SwarmDeployment.heal_all(dep)  # the swarm engine's part (no nodes to start here)
    assert sorted(scaled) == [("coordinator", 3), ("pgbouncer", 3)]  # worker 5 -> 4 only after a drain
