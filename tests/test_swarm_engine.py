"""The swarm engine without Docker: the stack file beside the reference
manifest, the edge's routes and config, the ownership override, engine
selection and its bad input, the "swarm" capability, the swarm faults'
refusal on compose."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from fake_deployment import FakeDeployment

from harness.engines.swarm.deployment import STACK_FILE, SwarmDeployment
from harness.engines.swarm.faults import SWARM_FAULTS, swarm
from harness.errors import PgchaosError
from harness.nemesis import CATALOGUE
from harness.stack import StackSpec
from harness.stack.spec import COMPOSE_DIR, Ports
from harness.stack.stack import mode_capabilities

REPO = Path(__file__).resolve().parents[1]


def deployment(tmp_path: Path, name: str = "postgres-mesh") -> SwarmDeployment:
    manifest = StackSpec().manifest
    return SwarmDeployment(name, manifest.dir, manifest, Ports(), state_dir=tmp_path)


def test_stack_file_has_every_manifest_service_dnsrr_and_publishes_nothing() -> None:
    doc = yaml.safe_load((COMPOSE_DIR / STACK_FILE).read_text())
    manifest = StackSpec().manifest
    assert set(manifest.services()) - {manifest.tools_service} <= set(doc["services"])
    for name, svc in doc["services"].items():
        assert svc["deploy"]["endpoint_mode"] == "dnsrr", name  # no IPVS on this kernel
        assert "ports" not in svc, f"{name} publishes a port (Swarm would bind every interface)"
    for member in manifest.data_members:
        assert doc["services"][member]["deploy"]["replicas"] == 1
        assert any(v.startswith(f"${{PGCHAOS_DATA}}/{member}:") for v in doc["services"][member]["volumes"])
    assert doc["services"]["pgbouncer"]["deploy"]["replicas"] >= 2
    assert doc["networks"]["cluster"] == {"driver": "overlay", "attachable": True}


def test_edge_routes_publish_fixed_ports_and_every_member_on_loopback(tmp_path: Path) -> None:
    dep = deployment(tmp_path)
    routes = dep.edge_routes()
    fixed = {(svc, port): host for svc, port, _, host in routes if host}
    ports = Ports()
    assert fixed[("pgbouncer", 6432)] == ports.pgbouncer
    assert fixed[("haproxy", 5000)] == ports.haproxy_primary
    members = {(svc, port) for svc, port, _, host in routes if not host}
    assert {("coordinator-1", 5432), ("coordinator-1", 8008), ("worker-2", 5432)} <= members
    assert len({edge for _, _, edge, _ in routes}) == len(routes)  # one edge port per route
    assert all(ip == "127.0.0.1" for _, ip, _ in dep.published_ports())
    cfg = dep.edge_config()
    assert "server-template t 4 pgbouncer:6432 check" in cfg and "resolvers docker" in cfg


def test_owner_override_labels_services_containers_and_keeps_the_network_attachable(tmp_path: Path) -> None:
    dep = deployment(tmp_path)
    path = tmp_path / "override.yml"
    dep.write_owner_override(path, {"io.pgchaos.owner": "pgchaos"})
    doc = json.loads(path.read_text())
    for name, svc in doc["services"].items():
        assert svc["labels"]["io.pgchaos.owner"] == "pgchaos", name
        assert svc["deploy"]["labels"]["io.pgchaos.engine"] == "swarm", name
    assert doc["networks"]["cluster"]["attachable"] is True


def test_swarm_names_map_to_the_stack(tmp_path: Path) -> None:
    dep = deployment(tmp_path, "mesh-ci")
    assert dep.swarm_service("coordinator-1") == "mesh-ci_coordinator-1"
    assert dep.swarm_service("mesh-ci_pgbouncer") == "mesh-ci_pgbouncer"
    assert dep.network_name == "mesh-ci_cluster" and dep.edge_name == "mesh-ci-edge"
    with pytest.raises(PgchaosError, match="stack name"):
        deployment(tmp_path, "bad name!")


def test_capability_swarm_only_on_the_swarm_engine() -> None:
    manifest = StackSpec().manifest
    assert "swarm" not in mode_capabilities(manifest, False)
    caps = mode_capabilities(manifest, False, "swarm")
    assert caps["swarm"] == 1 and "tools" not in caps


def test_engine_validation_one_line() -> None:
    with pytest.raises(PgchaosError, match="unknown engine 'nomad'"):
        StackSpec(engine="nomad").validate()
    with pytest.raises(PgchaosError, match="--attach works with --engine compose or swarm-nodes only"):
        StackSpec(engine="swarm", attach="x").validate()
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "up", "--engine", "nomad"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_swarm_faults_are_in_the_catalogue_and_refuse_compose() -> None:
    assert {f.name for f in SWARM_FAULTS} <= set(CATALOGUE)
    assert all(f.effect is not None for f in SWARM_FAULTS)  # each proves it took effect
    nem = SimpleNamespace(stack=SimpleNamespace(deployment=FakeDeployment({})))
    with pytest.raises(PgchaosError, match="needs the swarm engine"):
        swarm(nem, "task-kill")  # type: ignore[arg-type]


def test_swarm_scenarios_skip_on_compose_naming_the_capability(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
         *sorted(str(p) for p in (REPO / "scenarios").glob("test_swarm_*.py")),
         "--pgchaos-reports-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    assert "lacks: swarm" in out and " passed" not in out, out[-2000:]


class _FakeService:
    def __init__(self, name: str, labels: dict[str, str]) -> None:
        self.name, self.id, self.attrs = name, name, {"Spec": {"Labels": labels}}


def _fake_client(services: list[_FakeService]) -> SimpleNamespace:
    return SimpleNamespace(
        containers=SimpleNamespace(list=lambda **kw: []),
        services=SimpleNamespace(list=lambda **kw: services),
        networks=SimpleNamespace(list=lambda **kw: []),
        images=SimpleNamespace(list=lambda **kw: []),
        info=lambda: {"Swarm": {"LocalNodeState": "inactive"}})


@pytest.mark.parametrize(("labels", "removed"), [
    ({"io.pgchaos.owner": "pgchaos", "io.pgchaos.run": "mine"}, True),
    ({"io.pgchaos.owner": "pgchaos", "io.pgchaos.run": "another-run"}, False),
    ({"com.example": "someone else"}, False),
])
def test_down_removes_only_this_runs_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          labels: dict[str, str], removed: bool) -> None:
    from harness.engines.swarm import deployment as swarm_module

    calls: list[list[str]] = []
    monkeypatch.setattr(swarm_module, "_run", lambda cmd, **kw: calls.append(cmd))
    dep = deployment(tmp_path)
    dep.override_file = tmp_path / "override.yml"
    dep.write_owner_override(dep.override_file, {"io.pgchaos.owner": "pgchaos", "io.pgchaos.run": "mine"})
    dep._docker = _fake_client([_FakeService("postgres-mesh_etcd", labels)])  # type: ignore[assignment]
    dep.down(timeout=1)
    assert (["docker", "stack", "rm", "postgres-mesh"] in calls) is removed


def test_a_manifest_without_a_stack_file_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "PGCHAOS_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "up", "--engine", "swarm", "--manifest",
                           str(REPO / "tests" / "foreign" / "pgchaos.toml")],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "docker-stack.yml" in proc.stderr, proc.stderr
    assert not list((tmp_path / "state").rglob("run.json"))


def test_stack_deploy_gets_the_stacks_own_env_under_the_shell_and_pgchaos(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`docker stack deploy` reads no `.env`: the engine passes the stack's `.env` (as compose
    would read it), the shell's variables over it, and pgchaos's own for the run over both."""
    import shutil

    from harness.stack.manifest import load_manifest

    stack_dir = tmp_path / "stack"
    shutil.copytree(COMPOSE_DIR, stack_dir, ignore=shutil.ignore_patterns("variants", "images"))
    (stack_dir / ".env").write_text('POSTGRES_IMAGE="registry.example/pg:17"\nONLY_IN_DOTENV=1\n'
                                    "SHELL_WINS=from-dotenv\nPGCHAOS_RUN_ID=from-dotenv\n")
    run_env = tmp_path / "compose.env"
    run_env.write_text("PGCHAOS_RUN_ID=the-run\n")
    monkeypatch.setenv("SHELL_WINS", "from-shell")
    manifest = load_manifest(stack_dir / "pgchaos.toml")
    env = SwarmDeployment("postgres-mesh", stack_dir, manifest, Ports(), env_file=run_env,
                          state_dir=tmp_path)._env()
    assert env["POSTGRES_IMAGE"] == "registry.example/pg:17" and env["ONLY_IN_DOTENV"] == "1"
    assert env["SHELL_WINS"] == "from-shell" and env["PGCHAOS_RUN_ID"] == "the-run"
