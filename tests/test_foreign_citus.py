"""A Citus formation in another shape than the citus profile (tests/foreign_citus:
scope "demo", coord1..3, work1-1/1-2 and work2-1/2-2, three etcd, quorum mode,
no pooler, no Toxiproxy, no guide tables): its manifest validates against its
compose file, its capabilities are what it offers, and each Citus scenario
either runs on it or is skipped naming what the stack lacks. No Docker, no
Citus: this runs in CI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from harness.load.locust_runner import user_classes_for
from harness.load.schema import load_ddl
from harness.stack.manifest import ManifestError, check_against_services, load_manifest, unmet
from harness.stack.stack import mode_capabilities

HERE = Path(__file__).parent
DEMO = HERE / "foreign_citus"
SCENARIOS = HERE.parent / "scenarios"
CITUS_SCENARIOS = sorted(SCENARIOS.glob("test_citus_*.py"))


def requirements(path: Path) -> dict[str, list[str]]:
    """Per test function of a scenario module: its `pytest.mark.requires(...)` arguments,
    the module's (pytestmark) and the function's own, read from the source."""

    def requires_in(node: ast.AST) -> list[str]:
        out: list[str] = []
        for call in ast.walk(node):
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "requires"):
                out += [a.value for a in call.args if isinstance(a, ast.Constant)]
        return out

    tree = ast.parse(path.read_text())
    module: list[str] = []
    tests: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                                for t in node.targets):
            module += requires_in(node.value)
        elif isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            tests[node.name] = [r for d in node.decorator_list for r in requires_in(d)]
    return {name: module + own for name, own in tests.items()}


def test_the_demo_manifest_matches_its_compose_file() -> None:
    m = load_manifest(DEMO / "pgchaos.toml")
    services = list(yaml.safe_load((DEMO / "docker-compose.yml").read_text())["services"])
    check_against_services(m, services)  # raises, naming the service, when one is missing
    assert m.coordinator.name == "coord" and m.coordinator.members == ("coord1", "coord2", "coord3")
    assert [(g.name, g.citus_group, g.members) for g in m.worker_groups] == [
        ("work1", 1, ("work1-1", "work1-2")), ("work2", 2, ("work2-1", "work2-2"))]
    assert m.pooler is None and m.toxiproxy is None and m.monitoring is None
    assert m.database.name == "citus" and m.images == "citus"


def test_the_demo_formation_runs_in_quorum_mode_on_its_manifests_database() -> None:
    patroni = yaml.safe_load((DEMO / "patroni.yml").read_text())
    assert patroni["bootstrap"]["dcs"]["synchronous_mode"] == "quorum"
    assert patroni["citus"]["database"] == load_manifest(DEMO / "pgchaos.toml").database.name


def test_the_demo_capabilities_are_what_it_offers() -> None:
    caps = mode_capabilities(load_manifest(DEMO / "pgchaos.toml"), attached=False)
    assert caps == {"router": 1, "patroni": 3, "dcs-members": 3, "coordinator-members": 3,
                    "worker-groups": 2, "worker-standbys": 1, "citus": 1, "partition": 1}
    attached = mode_capabilities(load_manifest(DEMO / "pgchaos.toml"), attached=True)
    assert attached == caps  # nothing of ours to take away: no loop volumes, no tools


def test_each_citus_scenario_runs_or_names_what_the_demo_lacks() -> None:
    caps = mode_capabilities(load_manifest(DEMO / "pgchaos.toml"), attached=False)  # on compose
    verdicts = {}
    for path in CITUS_SCENARIOS:
        for test, reqs in requirements(path).items():
            assert "citus" in reqs, f"{path.name}::{test} must require the citus capability"
            verdicts[test] = unmet(reqs, caps)
    runs = sorted(t for t, missing in verdicts.items() if not missing)
    # the harness's own tables carry these: nothing of the guide, no pooler, no link needed
    assert runs == ["test_citus_coordinator_failover", "test_citus_transfers_coordinator_kill",
                    "test_citus_transfers_worker_failover", "test_citus_worker_failover"]
    assert verdicts["test_citus_worker_link"] == ["worker-links>=1"]
    assert verdicts["test_citus_transfers_link_cut"] == ["worker-links>=1"]
    assert verdicts["test_citus_scale_out"] == ["spare-groups", "spare-services", "toxiproxy"]
    assert verdicts["test_citus_worker_replacement"] == ["spare-groups", "spare-services", "toxiproxy"]
    assert verdicts["test_citus_monthly_dr_test"] == ["tools", "guide-schema", "pooler"]
    assert verdicts["test_citus_backup_restore"] == ["tools", "guide-schema", "loop-volumes"]


def test_the_citus_profile_runs_every_citus_scenario() -> None:
    """On compose (compose/citus), or on Swarm (compose/citus/swarm) for the guide's `docker service` ones."""
    from harness import engines
    from harness.stack.spec import COMPOSE_DIR

    caps = engines.engine("compose").capabilities(
        load_manifest(COMPOSE_DIR / "citus" / "pgchaos.toml").capabilities())
    on_swarm = engines.engine("swarm-nodes").capabilities(
        load_manifest(COMPOSE_DIR / "citus" / "swarm" / "pgchaos.toml").capabilities())
    for path in CITUS_SCENARIOS:
        for test, reqs in requirements(path).items():
            assert unmet(reqs, caps) == [] or unmet(reqs, on_swarm) == [], \
                f"{path.name}::{test} would skip on the citus profile (compose and Swarm)"


def test_the_load_follows_the_demo_capabilities() -> None:
    caps = load_manifest(DEMO / "pgchaos.toml").capabilities()
    users = user_classes_for(caps)
    assert "VectorUser" not in users and users  # no guide tables: no vector search calls
    ddl = load_ddl(None, citus=True)  # no setup_sql in the demo manifest: the harness's own
    assert "create_distributed_table('pgchaos.ledger', 'key'" in ddl
    assert "create_distributed_table('pgchaos.events', 'id', colocate_with => 'pgchaos.ledger')" in ddl
    assert "create_distributed_table" not in load_ddl(None, citus=False)


@pytest.mark.parametrize(("old", "new", "needle"), [
    ('citus_group = 2', 'citus_group = 1', "citus_group"),
    ('members = ["work2-1", "work2-2"]', 'members = ["work1-1", "work2-2"]', "work1-1"),
    ('name = "citus"\n', 'name = 5\n', "name"),
])
def test_a_broken_demo_manifest_is_one_line_naming_the_key(tmp_path: Path, old: str, new: str,
                                                          needle: str) -> None:
    text = (DEMO / "pgchaos.toml").read_text()
    assert old in text
    (tmp_path / "docker-compose.yml").write_text((DEMO / "docker-compose.yml").read_text())
    (tmp_path / "pgchaos.toml").write_text(text.replace(old, new, 1))
    with pytest.raises(ManifestError) as err:
        load_manifest(tmp_path / "pgchaos.toml")
    assert needle in str(err.value) and "\n" not in str(err.value).strip()
