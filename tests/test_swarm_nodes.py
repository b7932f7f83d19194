"""The multi-node swarm engine without Docker: placement of group members on
distinct nodes, the check that names a violation, the per-node image sets,
and host faults refused on an engine without hosts."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from fake_deployment import FakeDeployment

from harness.engines.swarm_nodes.deployment import SwarmNodesDeployment
from harness.engines.swarm_nodes.placement import deploy_placement, member_slots, placement_check, violations
from harness.errors import PgchaosError
from harness.nemesis.faults import CATALOGUE
from harness.stack.spec import StackSpec
from harness.stack.stack import mode_capabilities


@pytest.fixture(scope="module")
def manifest():
    return StackSpec(engine="swarm-nodes").manifest


def test_members_of_a_group_get_distinct_slots(manifest) -> None:
    slots = member_slots(manifest, 3)
    coordinators = [slots[m] for m in manifest.coordinator.members]
    assert sorted(coordinators) == [1, 2, 3]
    assert all(slots[g.members[0]] != 1 for g in manifest.groups if len(g.members) == 1)  # off the infra node


def test_deploy_placement_pins_members_and_spreads_the_pooler(manifest) -> None:
    services = ["coordinator-1", "coordinator-2", "etcd", "pgbouncer"]
    placed = deploy_placement(manifest, services, {"pgbouncer": 2}, 3)
    assert placed["coordinator-2"]["placement"]["constraints"] == ["node.labels.io.pgchaos.slot==2"]
    assert placed["etcd"]["placement"]["constraints"] == ["node.labels.io.pgchaos.slot==1"]
    assert placed["pgbouncer"]["placement"] == {"max_replicas_per_node": 1}


def test_two_members_on_one_node_is_named(manifest) -> None:
    where = {"coordinator-1": "n1", "coordinator-2": "n2", "coordinator-3": "n2"}
    assert violations(manifest, where) == ["group coordinator: coordinator-2 and coordinator-3 both on n2"]
    assert violations(manifest, {**where, "coordinator-3": "n3"}) == []


def test_placement_check_fails_on_a_violation_and_on_a_member_without_task(manifest) -> None:
    members = [m for g in manifest.groups for m in g.members]
    spread = {m: f"n{i % 3}" for i, m in enumerate(members)}
    assert placement_check(manifest, lambda: spread).ok
    bad = placement_check(manifest, lambda: {**spread, "coordinator-2": spread["coordinator-1"]})
    assert not bad.ok and "coordinator-1 and coordinator-2 both on" in bad.detail
    missing = placement_check(manifest, lambda: {k: v for k, v in spread.items() if k != "worker-1"})
    assert not missing.ok and "no running task: worker-1" in missing.detail


def test_each_node_loads_only_what_may_run_on_it(manifest, tmp_path: Path) -> None:
    spec = StackSpec(engine="swarm-nodes")
    dep = SwarmNodesDeployment("t", manifest.dir, manifest, spec.ports, state_dir=tmp_path, count=3)
    refs = dep.image_refs("T")
    assert "pgchaos/etcd:T" in refs[1] and "pgchaos/etcd:T" not in refs[2]
    assert {"pgchaos/postgres:T", "pgchaos/haproxy:T", "pgchaos/pgbouncer:T"} <= set(refs[3])


def test_override_adds_placement_to_the_ownership_labels(manifest, tmp_path: Path) -> None:
    spec = StackSpec(engine="swarm-nodes")
    dep = SwarmNodesDeployment("t", manifest.dir, manifest, spec.ports, state_dir=tmp_path, count=3)
    path = tmp_path / "override.yml"
    dep.write_owner_override(path, {"io.pgchaos.owner": "pgchaos"})
    doc = json.loads(path.read_text())
    deploy = doc["services"]["coordinator-3"]["deploy"]
    assert deploy["labels"]["io.pgchaos.owner"] == "pgchaos"
    assert deploy["placement"]["constraints"] == ["node.labels.io.pgchaos.slot==3"]


def test_host_faults_refuse_an_engine_without_hosts() -> None:
    nem = SimpleNamespace(stack=SimpleNamespace(deployment=FakeDeployment({})))
    for name in ("node-crash", "node-stop", "node-drain", "node-cut"):
        with pytest.raises(PgchaosError, match="--engine swarm-nodes"):
            CATALOGUE[name].inject(nem, "coordinator-1", {})


def test_capabilities_of_the_engines(manifest) -> None:
    assert "swarm-nodes" in mode_capabilities(manifest, False, "swarm-nodes")
    assert "swarm" in mode_capabilities(manifest, False, "swarm-nodes")
    assert "swarm-nodes" not in mode_capabilities(manifest, False, "swarm")


def test_images_every_node_needs_are_saved_once_and_fanned_out(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.engines.swarm_nodes.nodes import NodeSet

    saves: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    monkeypatch.setattr(NodeSet, "_save_load", staticmethod(
        lambda images, nodes, failed: saves.append((tuple(images), tuple(n.name for n in nodes)))))
    nodes = NodeSet("p", tmp_path, 3, [], progress=lambda _: None)
    member = ["pgchaos/haproxy", "pgchaos/pgbouncer", "pgchaos/postgres"]
    nodes.load_images({1: ["pgchaos/etcd", *member, "pgchaos/prometheus"], 2: member, 3: member})
    assert sorted(saves) == [(("pgchaos/etcd", "pgchaos/prometheus"), ("p-node1",)),
                             (tuple(member), ("p-node1", "p-node2", "p-node3"))]


def test_rolled_tag_is_made_on_every_node_that_has_the_image(manifest, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A rolling `--image` update's second tag exists wherever the image does (a node
    without the tag would reject its task: no registry to pull from), a cut-off node
    is not asked, and an image no node has is an error."""
    import docker.errors

    spec = StackSpec(engine="swarm-nodes")
    dep = SwarmNodesDeployment("t", manifest.dir, manifest, spec.ports, state_dir=tmp_path, count=3)
    tags: list[tuple[str, str]] = []
    has = {"t-node1": {"pgchaos/postgres:T", "pgchaos/haproxy:T"}, "t-node2": {"pgchaos/postgres:T"},
           "t-node3": {"pgchaos/postgres:T"}}

    def client(node):
        def get(ref):
            if ref not in has[node.name]:
                raise docker.errors.ImageNotFound(ref)
            return SimpleNamespace(tag=lambda target: tags.append((node.name, target)))
        return SimpleNamespace(images=SimpleNamespace(get=get))

    monkeypatch.setattr(dep.nodes, "client", client)
    monkeypatch.setattr(dep.nodes, "answers", lambda node: True)
    dep.avoid = {"t-node3"}
    rolled = dep.rolled_tag("pgchaos/postgres:T")
    assert rolled == "pgchaos/postgres:T-pgchaos-rolled"
    assert tags == [("t-node1", rolled), ("t-node2", rolled)]
    tags.clear()
    assert dep.rolled_tag("pgchaos/haproxy:T") == "pgchaos/haproxy:T-pgchaos-rolled"
    assert tags == [("t-node1", "pgchaos/haproxy:T-pgchaos-rolled")]
    assert dep.rolled_tag(rolled) == "pgchaos/postgres:T"  # back: the base tag is there already
    with pytest.raises(PgchaosError, match="no node of t has pgchaos/etcd:T"):
        dep.rolled_tag("pgchaos/etcd:T")
