"""A user's own stack, described by a manifest (issue 18's findings), without running it:
the stack's own .env and env files under pgchaos's variables, attach with members
down and heal, the drill's health step, scenarios naming roles, state scoped to the
caller. `docker compose config` is the only engine call (no daemon needed)."""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fake_deployment import FakeDeployment

from harness import cli, gameday
from harness.engines.compose import ComposeDeployment, attachable_projects
from harness.errors import PgchaosError
from harness.nemesis.targets import MEMBER_ROLES, PART_ROLES
from harness.stack import provision
from harness.stack import runs as runs_module
from harness.stack.manifest import load_manifest
from harness.stack.spec import COMPOSE_DIR, StackSpec
from harness.stack.stack import Stack

FOREIGN = Path(__file__).parent / "foreign"
SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "state"
    monkeypatch.setattr(runs_module, "STATE_ROOT", root)
    return root


def _images(stack: Stack) -> dict[str, str]:
    return {name: svc["image"] for name, svc in stack.deployment.config().get("services", {}).items()}


# -- 1. the stack's own variables ----------------------------------------------------------

def test_provision_reads_the_stacks_env_under_pgchaos_variables(tmp_path: Path, state: Path) -> None:
    """The foreign stack's image name comes only from its .env (the compose default names a
    registry that does not exist); pgchaos's PGCHAOS_IMAGE_TAG wins over the user's."""
    assert "registry.invalid" in (FOREIGN / "docker-compose.yml").read_text()
    stack = Stack(StackSpec(manifest_path=FOREIGN / "pgchaos.toml"))
    stack.image_tag = "tag-of-pgchaos"
    provision.write_state(stack)
    try:
        assert _images(stack)["patroni1"] == "pgchaos/postgres:tag-of-pgchaos"
        files = stack.deployment.command
        assert files.index(str(FOREIGN / ".env")) < files.index(str(stack.env_file))  # pgchaos's last: it wins
    finally:
        shutil.rmtree(stack.state_dir)
    copy = tmp_path / "shop"
    shutil.copytree(FOREIGN, copy)
    (copy / ".env").write_text("FOREIGN_IMAGE=from-dotenv/postgres\nPGCHAOS_IMAGE_TAG=from-user\n")
    (copy / "extra.env").write_text("FOREIGN_IMAGE=from-env-file/postgres\n")
    toml = (copy / "pgchaos.toml").read_text().replace('images = "reference"', 'env_file = "extra.env"')
    (copy / "pgchaos.toml").write_text(toml)
    stack = Stack(StackSpec(manifest_path=copy / "pgchaos.toml"))
    provision.write_state(stack)
    assert _images(stack)["patroni1"] == "from-env-file/postgres:latest"  # named file after .env; tag pgchaos's
    attached = Stack(StackSpec(manifest_path=copy / "pgchaos.toml", attach="p"))
    assert _images(attached)["patroni1"] == "from-env-file/postgres:from-user"  # attach: only the user's


def test_env_file_must_exist(tmp_path: Path) -> None:
    copy = tmp_path / "shop"
    shutil.copytree(FOREIGN, copy)
    (copy / "pgchaos.toml").write_text((copy / "pgchaos.toml").read_text().replace(
        'images = "reference"', 'env_file = ["nope.env"]'))
    with pytest.raises(PgchaosError, match="stack.env_file: file not found"):
        load_manifest(copy / "pgchaos.toml")


# -- 2. attach with members down, heal ------------------------------------------------------

class FakeContainer(SimpleNamespace):
    pass


def _container(project: str, service: str, status: str = "running") -> FakeContainer:
    return FakeContainer(labels={"com.docker.compose.project": project, "com.docker.compose.service": service},
                         status=status, name=f"{project}-{service}-1")


class FakeClient:
    def __init__(self, containers: list[FakeContainer]) -> None:
        self.listed: list[dict[str, Any]] = []
        self.containers = SimpleNamespace(list=self._list)
        self._all = containers

    def _list(self, all: bool = False, **kwargs: Any) -> list[FakeContainer]:  # noqa: A002 - docker's name
        self.listed.append({"all": all, **kwargs})
        return [c for c in self._all if all or c.status == "running"]


def test_attach_finds_a_project_whose_member_a_fault_stopped() -> None:
    services = ["patroni1", "patroni2", "lb"]
    client = FakeClient([_container("shop", "patroni1"), _container("shop", "patroni2", "exited"),
                         _container("shop", "lb"), _container("old", "patroni1", "exited"),
                         _container("old", "patroni2", "exited"), _container("old", "lb", "exited")])
    assert attachable_projects(client, services) == ["shop"]  # not the project that is all down


def test_connect_accepts_down_members_start_does_not(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = Stack(StackSpec(manifest_path=FOREIGN / "pgchaos.toml", attach="shop-x"), progress=lambda m: None)
    m = stack.manifest
    found = {s: _container("shop-x", s) for s in m.services()}
    found["patroni2"].status = "exited"
    monkeypatch.setattr(ComposeDeployment, "containers", lambda self: found)
    down = {"patroni2"}

    def patroni_url(self: Stack, member: str) -> str:
        if member in down:  # as the engine answers for a stopped container
            raise PgchaosError(f"{member} is not running (exited): its port 8008/tcp has no address")
        return f"http://{member}"

    monkeypatch.setattr(Stack, "patroni_url", patroni_url)
    monkeypatch.setattr("requests.get", lambda url, timeout: SimpleNamespace(raise_for_status=lambda: None))
    monkeypatch.setattr(Stack, "docker", object())
    stack.connect()
    assert stack.state_dir == state / "attached" / "shop-x"  # one place for every call's faults
    with pytest.raises(PgchaosError, match="service\\(s\\) not running: patroni2"):
        stack._attach(all_running=True)
    down.update({"patroni1", "patroni3"})
    with pytest.raises(PgchaosError, match="patroni1: Patroni REST API"):  # none answers: not a stack to use
        stack.connect()


def test_the_heal_hint_targets_the_same_stack(state: Path) -> None:
    attached = Stack(StackSpec(manifest_path=FOREIGN / "pgchaos.toml", attach="shop x"), progress=lambda m: None)
    hint = cli._same_stack(attached)
    assert hint == f" --manifest {FOREIGN / 'pgchaos.toml'} --attach 'shop x'"
    mine = Stack(StackSpec(), run_id="r1", progress=lambda m: None)
    assert cli._same_stack(mine) == " --run-id r1"
    args = cli._parse(["heal", "0", "--run-id", "r1"])  # the hint parses
    assert args.run_id == "r1" and args.id == "0"


# -- 3. the drill --------------------------------------------------------------------------

def test_drill_without_profile_takes_what_is_up() -> None:
    args = cli._parse(["drill", "coordinator-failure", "--manifest", str(FOREIGN / "pgchaos.toml"),
                       "--attach", "--yes"])
    assert args.profile is None
    cli._spec(args).validate()  # no "unknown profile None"


def test_drill_health_never_sends_http_to_a_postgres_port(monkeypatch: pytest.MonkeyPatch) -> None:
    m = load_manifest(FOREIGN / "pgchaos.toml")
    assert m.router.health_port is None
    urls: list[str] = []
    fake = SimpleNamespace(manifest=m, patroni_url=lambda member: f"http://127.0.0.1:1{member[-1]}",
                           endpoint=lambda service, port: pytest.fail(f"asked {service}:{port}"))
    monkeypatch.setattr("requests.get", lambda url, timeout: urls.append(url) or SimpleNamespace(status_code=200))
    out = gameday._health(fake)
    assert urls == [f"http://127.0.0.1:1{i}/health" for i in (1, 2, 3)]  # Patroni's REST API of each member
    assert "skipped, the manifest names no health endpoint" in out


# -- 4. scenarios name roles -------------------------------------------------------------------

def test_scenarios_name_roles_never_services() -> None:
    """A literal target of nemesis.inject is a role (or a group name), never a service of a manifest."""
    roles = {*MEMBER_ROLES, *PART_ROLES, "client", "replication"}
    manifests = [load_manifest(COMPOSE_DIR / "pgchaos.toml"), load_manifest(FOREIGN / "pgchaos.toml")]
    groups = {g.name for m in manifests for g in (*m.groups, *m.spare_groups)}
    services = {s for m in manifests for s in m.services()} - groups
    bad = []
    for path in sorted(SCENARIOS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "inject"
                    and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)):
                target = str(node.args[1].value)
                role = target.partition("@")[0]
                if target in services or (role not in roles and role not in groups):
                    bad.append(f"{path.name}:{node.lineno}: {target!r}")
    assert not bad, bad


# -- 5. state scoped to the caller -------------------------------------------------------------

def _run(state: Path, run_id: str, **meta: Any) -> None:
    folder = state / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({
        "run_id": run_id, "project": f"pgchaos-{run_id}", "profile": "local", "variant": None,
        "compose_dir": str(COMPOSE_DIR), "manifest": str(COMPOSE_DIR / "pgchaos.toml"), "detached": True,
        "image_tag": "latest", "ports": {}, **meta}))


def test_the_current_stack_is_the_callers_own(state: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _run(state, "20250101-000000-aaaa", owner_uid=os.getuid(), owner_cwd=str(tmp_path))
    _run(state, "20250101-000001-bbbb", owner_uid=os.getuid() + 1, owner_cwd=str(tmp_path))  # another user's
    _run(state, "20250101-000002-cccc", owner_uid=os.getuid(), owner_cwd="/elsewhere")  # another folder's
    _run(state, "20250101-000003-dddd")  # written before owners were recorded: nobody's in particular
    assert runs_module.own_runs() == ["20250101-000000-aaaa"]
    assert Stack.attach(progress=lambda m: None).run_id == "20250101-000000-aaaa"  # not the newest of anyone
    assert Stack.attach("20250101-000002-cccc", progress=lambda m: None).run_id == "20250101-000002-cccc"
    shutil.rmtree(state / "runs" / "20250101-000000-aaaa")
    with pytest.raises(PgchaosError, match=r"no pgchaos stack is up from this folder .*3 other stack\(s\)"):
        Stack.attach(progress=lambda m: None)  # `down` without an id removes nothing of anyone else's
    with pytest.raises(PgchaosError, match="no pgchaos stack 'nope' is up"):
        Stack.attach("nope", progress=lambda m: None)


def test_status_all_lists_every_stack(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run(state, "r1", owner_uid=os.getuid(), owner_cwd="/a")
    _run(state, "r2", owner_uid=os.getuid() + 1, owner_cwd="/b")
    assert cli.cmd_status(argparse.Namespace(all=True, json=False)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("r1: project pgchaos-r1, started by you in /a")
    assert out[1].startswith(f"r2: project pgchaos-r2, started by uid {os.getuid() + 1} in /b")


# -- 7. smaller findings -----------------------------------------------------------------------

def test_list_with_a_manifest_says_what_applies_and_why_not(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list", "--json", "--manifest", str(FOREIGN / "pgchaos.toml")]) == 0
    on = json.loads(capsys.readouterr().out)["on_stack"]
    assert on["coordinator_hard_loss"]["lacks"] == []
    assert on["leader_partition"]["lacks"] == ["replication-links"]  # known before running it
    assert on["pool_exhaustion"]["lacks"] == ["pooler"]
    assert cli.main(["list", "--manifest", str(FOREIGN / "pgchaos.toml"), "--attach"]) == 0
    assert "skipped here: the stack (shop) lacks: loop-volumes" in capsys.readouterr().out


def test_list_judges_a_profile_on_an_engine(capsys: pytest.CaptureFixture[str]) -> None:
    """`list --engine`: what the engine serves (host faults on several hosts, no partition on
    Swarm); `--profile` picks that profile's manifest for the engine."""
    assert cli.main(["list", "--json", "--profile", "citus", "--engine", "swarm-nodes"]) == 0
    on = json.loads(capsys.readouterr().out)["on_stack"]
    assert on["node_crash_worker"]["stack"] == "citus-swarm" and on["node_crash_worker"]["lacks"] == []
    assert on["citus_worker_link"]["lacks"] == []  # the Swarm stack's Toxiproxy links
    assert on["leader_partition"]["lacks"] == ["partition"]
    assert on["citus_scale_out"]["lacks"] == ["spare-services"]  # compose's spare profile; Swarm scales
    assert cli.main(["list", "--json", "--engine", "compose"]) == 0
    on = json.loads(capsys.readouterr().out)["on_stack"]
    assert on["leader_partition"]["lacks"] == [] and on["node_crash_leader"]["lacks"] == ["swarm-nodes",
                                                                                          "node-control"]
    assert cli.main(["list", "--engine", "swarm-nodes", "--profile", "citus", "--attach"]) == 0
    assert "node_crash_worker" in (out := capsys.readouterr().out) and "lacks: node-control" in out
    assert cli.main(["list", "--engine", "swarm", "--attach"]) == 2
    assert "--attach works with --engine" in capsys.readouterr().err


def test_load_users_follow_capabilities() -> None:
    from harness.load.locust_runner import user_classes_for

    foreign = load_manifest(FOREIGN / "pgchaos.toml").capabilities()
    assert user_classes_for(foreign) == ("WriterUser", "ReaderUser")  # no `vectors` table to search
    assert "VectorUser" in user_classes_for(load_manifest(COMPOSE_DIR / "pgchaos.toml").capabilities())


def test_port_hint_names_variables_only_where_the_compose_file_reads_them(state: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PgchaosError) as foreign:
            provision.check_ports_free([("lb", "127.0.0.1", port)], port_variables=False)
        with pytest.raises(PgchaosError) as reference:
            provision.check_ports_free([("lb", "127.0.0.1", port)], port_variables=True)
    assert "PGCHAOS_" not in str(foreign.value) and "127.0.0.1::CONTAINER" in str(foreign.value)
    assert "PGCHAOS_<NAME>_PORT" in str(reference.value)
    assert not provision.reads_port_variables(StackSpec(manifest_path=FOREIGN / "pgchaos.toml").manifest)
    assert provision.reads_port_variables(StackSpec().manifest)


def test_an_unpublished_port_says_how_to_publish_it(monkeypatch: pytest.MonkeyPatch) -> None:
    d = ComposeDeployment("p", FOREIGN, ["docker-compose.yml"], provisioned=False)
    ports = {"5432/tcp": [{"HostIp": "0.0.0.0", "HostPort": "5432"}]}
    box = FakeContainer(status="running", attrs={"NetworkSettings": {"Ports": ports}}, reload=lambda: None)
    monkeypatch.setattr(ComposeDeployment, "container", lambda self, service: box)
    with pytest.raises(PgchaosError, match=r'only on 0.0.0.0:5432\); .*add ports: \["127.0.0.1::5432"\]'):
        d.endpoint("patroni1", 5432)
    box.status = "exited"
    with pytest.raises(PgchaosError, match="patroni1 is not running \\(exited\\)"):
        d.endpoint("patroni1", 5432)


def test_attach_teardown_says_nothing_is_removed(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.session import stop_uninterrupted

    stopped: list[bool] = []
    stop_uninterrupted(SimpleNamespace(attached=True, project="shop-x", stop=lambda: stopped.append(True)))
    err = capsys.readouterr().err
    assert stopped and "removing" not in err and "leaving shop-x running" in err


def test_gc_all_keeps_live_runs_of_another_state_folder(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.engines.base import ownership_labels
    from harness.engines.swarm import deployment as swarm
    from harness.stack import gc

    def box(project: str, state_dir: str) -> FakeContainer:
        labels = {**ownership_labels(project, 1, True, state_dir), "com.docker.compose.project": project}
        return FakeContainer(labels=labels, status="running")

    containers = [box("pgchaos-mine", str(state)), box("pgchaos-theirs", "/var/lib/pgchaos-other")]
    client = SimpleNamespace(containers=SimpleNamespace(list=lambda **kw: containers),
                             networks=SimpleNamespace(list=lambda **kw: []))
    removed: list[str] = []
    monkeypatch.setattr(gc, "docker_client", lambda: client)
    monkeypatch.setattr(gc, "remove_project_resources", lambda c, project: removed.append(project))
    monkeypatch.setattr(swarm, "collect_swarm", lambda everything, progress: [])
    report = gc.collect(everything=True)
    assert removed == ["pgchaos-mine"] and report.kept == ["pgchaos-theirs"]


def test_gc_leaves_a_run_folder_being_set_up(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs starting at once in one state folder: the gc each does first must not take the
    other's folder (claimed, run.json not written yet) for a dead run's leftover; a folder
    claimed by a dead process, or unclaimed and old, is one."""
    import os
    import subprocess
    import sys
    import time

    from harness.engines.swarm import deployment as swarm
    from harness.stack import gc

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    runs = runs_module.runs_dir()
    folders = {name: runs / name for name in ("starting", "died-starting", "old-unclaimed", "just-made")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    runs_module.claim(folders["starting"])  # this process: alive
    runs_module.write_atomically(folders["died-starting"] / runs_module.OWNER_FILE, dead)
    os.utime(folders["old-unclaimed"], (time.time() - 3600, time.time() - 3600))
    assert [p.name for p in runs.glob("*/.*.tmp")] == []  # atomic writes leave no temporary file
    client = SimpleNamespace(containers=SimpleNamespace(list=lambda **kw: []),
                             networks=SimpleNamespace(list=lambda **kw: []))
    removed: list[str] = []
    monkeypatch.setattr(gc, "docker_client", lambda: client)
    monkeypatch.setattr(gc, "remove_project_resources", lambda c, project: removed.append(project))
    monkeypatch.setattr(swarm, "collect_swarm", lambda everything, progress: [])
    report = gc.collect()
    assert sorted(removed) == ["pgchaos-died-starting", "pgchaos-old-unclaimed"], removed
    assert sorted(report.kept) == ["pgchaos-just-made", "pgchaos-starting"], report.kept
    assert folders["starting"].is_dir() and not folders["died-starting"].exists()


def test_gc_leaves_a_starting_run_that_has_only_its_network(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """compose makes a run's network before its containers: a gc (of any state folder) that
    sees only the network of a run whose owner is alive keeps it; a network whose owner is
    dead is a leftover."""
    import subprocess
    import sys

    from harness.engines.base import DETACHED_LABEL, OWNER_LABEL, PID_LABEL, PROJECT_LABEL, RUN_LABEL, STATE_LABEL
    from harness.engines.swarm import deployment as swarm
    from harness.stack import gc

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()

    def network(project: str, pid: str) -> SimpleNamespace:
        return SimpleNamespace(attrs={"Labels": {
            PROJECT_LABEL: project, OWNER_LABEL: "pgchaos", RUN_LABEL: project.removeprefix("pgchaos-"),
            PID_LABEL: pid, DETACHED_LABEL: "false", STATE_LABEL: "/var/lib/pgchaos-elsewhere"}})

    nets = [network("pgchaos-starting", str(os.getpid())), network("pgchaos-left", dead)]
    client = SimpleNamespace(containers=SimpleNamespace(list=lambda **kw: []),
                             networks=SimpleNamespace(list=lambda **kw: nets))
    removed: list[str] = []
    monkeypatch.setattr(gc, "docker_client", lambda: client)
    monkeypatch.setattr(gc, "remove_project_resources", lambda c, project: removed.append(project))
    monkeypatch.setattr(swarm, "collect_swarm", lambda everything, progress: [])
    report = gc.collect()
    assert removed == ["pgchaos-left"] and report.kept == ["pgchaos-starting"], (removed, report.kept)
    removed.clear()
    report = gc.collect(everything=True)  # --all: a live run of another state folder is still not ours
    assert removed == ["pgchaos-left"] and report.kept == ["pgchaos-starting"], (removed, report.kept)


def test_the_manifest_reference_example_has_every_key_and_loads(tmp_path: Path) -> None:
    """docs/manifest.md: the example holds every key its reference tables list, and it validates."""
    import re
    import tomllib

    doc = (Path(__file__).resolve().parents[1] / "docs" / "manifest.md").read_text()
    example = doc.split("Every key in one file", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    reference = doc.split("## Reference: every key", 1)[1]
    sections = re.split(r"^### ", reference.split("\n## ", 1)[0], flags=re.M)[1:]
    parsed = tomllib.loads(example)
    assert len(sections) == 11, [s.splitlines()[0] for s in sections]
    for section in sections:
        table = re.match(r"`\[\[?(\w+)\]?\]`", section).group(1)
        keys = set(re.findall(r"^\| `(\w+)` \|", section, re.M))
        entries = parsed[table] if isinstance(parsed[table], list) else [parsed[table]]
        have = {k for entry in entries for k in entry}
        assert keys and keys <= have, (table, keys - have)
    (tmp_path / "pgchaos.toml").write_text(example)
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    (tmp_path / "shop.env").write_text("")
    (tmp_path / "config").mkdir()
    (tmp_path / "sql").mkdir()
    for name in ("schema.sql", "load.sql"):
        (tmp_path / "sql" / name).write_text("")
    m = load_manifest(tmp_path / "pgchaos.toml")
    assert m.env_files == ("shop.env",) and m.spare_groups[0].compose_profile == "spare"
    assert m.swarm is not None and m.swarm.ports[("worker1b", 8008)] == 18012


def test_locust_teardown_writes_no_op_to_a_closed_history(tmp_path: Path) -> None:
    """The history closes after the runner stopped its users (locust's `quit`, not `quitting`):
    no "I/O operation on closed file." from a user still stopping. No database needed: the
    users' connections fail, and every failure is an op written to the history."""
    import time

    from harness.load.locust_runner import LocustLoad

    load = LocustLoad("host=127.0.0.1 port=1 dbname=x user=x password=x connect_timeout=1", tmp_path,
                      time.monotonic(), 0, users=3, run_time_s=60, user_classes=("WriterUser", "ReaderUser"))
    load.start()
    time.sleep(6)
    load.stop()
    log = (tmp_path / "locust.log").read_text()
    assert "closed file" not in log, log[-2000:]
    assert (tmp_path / "history-locust.jsonl").read_text().count("\n") > 10


def test_a_dcs_outage_stops_as_many_members_as_asked() -> None:
    """etcd-outage on the `dcs` role with members=N stops N members of a multi-member DCS
    (stopping one of three is no outage), and its heal rebuilt from the description starts them."""
    from harness.nemesis import faults

    log: list[str] = []

    def member(service: str) -> FakeContainer:
        box = FakeContainer(status="running", reload=lambda: None)
        box.start = lambda: (log.append(f"start {service}"), setattr(box, "status", "running"))
        box.stop = lambda timeout: (log.append(f"stop {service}"), setattr(box, "status", "exited"))
        return box

    deployment = FakeDeployment({f"etcd{i}": member(f"etcd{i}") for i in (1, 2, 3)})
    nem = SimpleNamespace(stack=SimpleNamespace(manifest=load_manifest(FOREIGN / "pgchaos.toml")),
                          deployment=deployment)
    faults._etcd_outage(nem, "etcd1", {"members": 3})
    assert log == ["stop etcd1", "stop etcd2", "stop etcd3"]
    faults.repair(nem, "etcd-outage", "etcd1", {"members": 3})  # what every heal runs
    faults.repair(nem, "etcd-outage", "etcd2", {"members": "2"})  # as `pgchaos heal` rebuilds it
    assert log[3:] == ["start etcd1", "start etcd2", "start etcd3"]  # a running member is left alone
    assert faults.dcs_outage_members(nem, "etcd1", {}) == ["etcd1"]  # one member unless asked
