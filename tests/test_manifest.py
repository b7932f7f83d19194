"""The stack manifest: the reference and the foreign stack load, every mistake
is one line naming the key and the fix (exit 2 from the CLI, nothing
created), capabilities and requirements, and role resolution rules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import PgchaosError
from harness.nemesis.targets import candidate
from harness.stack.manifest import ManifestError, load_manifest, unmet
from harness.stack.spec import COMPOSE_DIR
from harness.stack.stack import mode_capabilities
from harness.stack.topology import Member

FOREIGN = Path(__file__).parent / "foreign" / "pgchaos.toml"
MINIMAL = """
[stack]
name = "t"
compose_files = ["docker-compose.yml"]
[database]
name = "db"
user_env = "T_USER"
password_env = "T_PASSWORD"
[[groups]]
name = "g"
role = "standalone"
scope = "g"
members = ["p1", "p2"]
[router]
service = "lb"
[dcs]
members = ["etcd"]
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    path = tmp_path / "pgchaos.toml"
    path.write_text(text)
    return path


def test_reference_manifest_describes_the_reference_stack() -> None:
    m = load_manifest(COMPOSE_DIR / "pgchaos.toml")
    assert m.coordinator.members == ("coordinator-1", "coordinator-2", "coordinator-3")
    assert [g.name for g in m.worker_groups] == ["worker-1", "worker-2"]
    assert m.data_members == ["coordinator-1", "coordinator-2", "coordinator-3", "worker-1", "worker-2"]
    caps = m.capabilities()
    assert caps["pooler"] == caps["toxiproxy"] == caps["loop-volumes"] == 1
    assert caps["worker-groups"] == 2 and caps["dcs-members"] == 1
    assert m.database.credentials() == ("dpg_cluster", "dpg_cluster_pw")


def test_foreign_manifest_lacks_what_it_lacks() -> None:
    m = load_manifest(FOREIGN)
    assert m.missing(["pooler", "toxiproxy", "dcs-members>=3", "coordinator-members>=2"]) == \
        ["pooler", "toxiproxy"]
    assert m.coordinator.name == "shop"  # no coordinator role: the first Patroni group takes writes


def test_attach_mode_has_no_loop_volumes_or_tools() -> None:
    m = load_manifest(COMPOSE_DIR / "pgchaos.toml")
    assert "loop-volumes" in mode_capabilities(m, attached=False)
    caps = mode_capabilities(m, attached=True)
    assert "loop-volumes" not in caps and "tools" not in caps and "pooler" in caps


def test_requirements_name_what_is_missing() -> None:
    caps = {"dcs-members": 1, "pooler": 1}
    assert unmet(["pooler", "dcs-members>=3", "citus"], caps) == ["dcs-members>=3 (has 1)", "citus"]
    with pytest.raises(PgchaosError, match="malformed capability"):
        unmet(["dcs members"], caps)


@pytest.mark.parametrize(("change", "needle"), [
    (lambda t: t + "[bogus]\nx = 1\n", "unknown key 'bogus'"),
    (lambda t: t.replace('role = "standalone"', 'role = "primary"'), "groups[0].role: must be one of"),
    (lambda t: t.replace('members = ["p1", "p2"]', "members = []"), "groups[0].members: must be a non-empty"),
    (lambda t: t.replace('scope = "g"\n', ""), "groups[0].scope: missing"),
    (lambda t: t.replace('[router]\nservice = "lb"\n', ""), "router: missing table"),
    (lambda t: t.replace('compose_files = ["docker-compose.yml"]', 'compose_files = ["nope.yml"]'),
     "stack.compose_files: file not found"),
    (lambda t: t + '[toxiproxy]\nservice = "tp"\nreplication = "repl"\n', "must be a pattern with {member}"),
    (lambda t: t + '[toxiproxy]\nservice = "tp"\nworkers = { w9 = "x" }\n', "toxiproxy.workers.w9"),
    (lambda t: t.replace('members = ["etcd"]', 'members = ["etcd"]\nclient_port = 99999'),
     "dcs.client_port: 99999 is not a port number"),
    (lambda t: t.replace('name = "db"', "name = 5"), "database.name: must be a str"),
    (lambda t: t + "[[", "not valid TOML"),
    (lambda t: t + '[monitoring]\nprometheus = "p"\nalert_receiver = "r"\n',
     "monitoring.alert_receiver: needs alertmanager"),
    (lambda t: t + '[monitoring]\nalertmanager = "am"\nalertmanager_port = 0\n',
     "monitoring.alertmanager_port"),
])
def test_bad_manifest_is_one_line_naming_the_key(tmp_path: Path, change, needle: str) -> None:
    path = write(tmp_path, change(MINIMAL))
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_credentials_come_from_the_named_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = load_manifest(write(tmp_path, MINIMAL))
    with pytest.raises(ManifestError, match="set T_USER"):
        m.database.credentials()
    monkeypatch.setenv("T_USER", "u")
    monkeypatch.setenv("T_PASSWORD", "p")
    assert m.database.credentials() == ("u", "p")


def test_switchover_candidate_follows_the_clusters_mode() -> None:
    sync = [Member("a", "leader", "running"), Member("b", "replica", "streaming", lag_bytes=0),
            Member("c", "sync_standby", "streaming", lag_bytes=10)]
    assert candidate(sync, ["a"]) == "c"  # synchronous mode: only the sync standby
    asynchronous = [Member("a", "leader", "running"), Member("b", "replica", "streaming", lag_bytes=500),
                    Member("c", "replica", "streaming", lag_bytes=0), Member("d", "replica", "stopped")]
    assert candidate(asynchronous, ["a"]) == "c"  # else the streaming replica with the least lag
    assert candidate([Member("a", "leader", "running"), Member("b", "replica", "stopped")], ["a"]) is None


def run_cli(*args: str, cwd: Path, credentials: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PGCHAOS_STATE_DIR": str(cwd / "state")}
    for name in ("T_USER", "T_PASSWORD"):
        env.pop(name, None)
        if credentials:
            env[name] = name.lower()
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("args", "needle"), [
    (("up", "--manifest", "{bad}"), "unknown key 'bogus'"),
    (("up", "--manifest", "{missing_service}"), "service 'p1' is not in the compose files"),
    (("status", "--manifest", "{ok}", "--attach", "no-such-project"), "no running compose project"),
    (("status", "--manifest", "{ok}"), "--manifest without --attach"),
    # credentials unset: said before anything starts (not as a stack whose health cannot be checked)
    (("up", "--manifest", "{ok}", "--no-credentials"), "set T_USER and T_PASSWORD: the manifest's [database]"),
    (("run", "coordinator_graceful_stop", "--manifest", "{ok}", "--no-credentials"), "set T_USER and T_PASSWORD"),
])
def test_cli_manifest_errors_are_one_line(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    files = {"bad": MINIMAL + "[bogus]\nx = 1\n", "missing_service": MINIMAL, "ok": MINIMAL}
    paths = {}
    for name, text in files.items():
        folder = tmp_path / name
        folder.mkdir()
        paths[name] = str(write(folder, text))
    proc = run_cli(*(a.format(**paths) for a in args if a != "--no-credentials"), cwd=tmp_path,
                   credentials="--no-credentials" not in args)
    if args[0] == "run":  # pytest underneath: its usage error, one line, exit 4; nothing started
        lines = [line for line in proc.stderr.splitlines() if line.startswith("ERROR:")]
        assert proc.returncode == 4 and len(lines) == 1 and needle in lines[0], proc.stdout + proc.stderr
    else:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2, proc.stderr
        assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert not (tmp_path / "state").exists()


def test_ownership_needs_a_run_id_not_just_the_owner_label() -> None:
    """Containers inherit image labels: one of pgchaos's images run by someone else
    carries the owner label but no run id, and is not ours (gc and down leave it)."""
    from harness.engines.base import is_ours

    assert is_ours({"io.pgchaos.owner": "pgchaos", "io.pgchaos.run": "20261126-0100-ab12"})
    assert not is_ours({"io.pgchaos.owner": "pgchaos"})
    assert not is_ours({"io.pgchaos.run": "x"})


CITUS = COMPOSE_DIR / "citus" / "pgchaos.toml"
CITUS_MINIMAL = MINIMAL.replace('role = "standalone"\nscope = "g"',
                                'role = "coordinator"\nscope = "g"\ncitus_group = 0') + """
[[groups]]
name = "w1"
role = "worker"
scope = "g"
citus_group = 1
members = ["w1a"]
[[groups]]
name = "w9"
role = "worker"
scope = "g"
citus_group = 9
members = ["w9a", "w9b"]
spare = true
compose_profile = "spare"
"""


def test_citus_manifest_declares_its_spare_group_apart_from_the_formation() -> None:
    m = load_manifest(CITUS)
    spare = m.spare_group()
    assert (spare.name, spare.members, spare.citus_group, spare.compose_profile) == \
        ("worker-3", ("worker-3a", "worker-3b"), 3, "spare")
    assert spare.spare and m.spare_group("worker-3") is spare
    assert [g.name for g in m.worker_groups] == ["worker-1", "worker-2"]  # the steady state expects these
    assert "worker-3a" not in m.data_members and "worker-3a" not in m.services()
    assert m.capabilities()["spare-groups"] == 1 and m.capabilities()["worker-groups"] == 2


def test_a_stack_without_a_spare_group_says_how_to_declare_one(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, MINIMAL))
    assert m.spare_groups == () and "spare-groups" not in m.capabilities()
    with pytest.raises(PgchaosError, match=r"no spare group declared; add a \[\[groups\]\] table with spare"):
        m.spare_group()
    assert m.missing(["spare-groups"]) == ["spare-groups"]


@pytest.mark.parametrize(("change", "needle"), [
    (lambda t: t.replace("spare = true", 'spare = "yes"'), "groups[2].spare: must be a bool"),
    (lambda t: t.replace('role = "worker"\nscope = "g"\ncitus_group = 9', 'role = "coordinator"\nscope = "g"\n'
                         'citus_group = 9'), "groups[2].spare: only a worker group can be a spare"),
    (lambda t: t.replace("spare = true\n", ""), "groups[2].compose_profile: only for a spare group"),
    (lambda t: t.replace('compose_profile = "spare"', 'compose_profile = "no spaces"'),
     "groups[2].compose_profile: 'no spaces' is not a compose profile name"),
    (lambda t: t.replace("citus_group = 9\n", ""), "groups[2].citus_group: missing; a spare group of a Citus"),
    (lambda t: t.replace("citus_group = 9", "citus_group = 1"), "a spare group's citus_group must differ"),
    (lambda t: t.replace('members = ["w9a", "w9b"]', 'members = ["w1a"]'), "member 'w1a' is in two groups"),
    (lambda t: t.replace('name = "w9"', 'name = "w1"'), "group names must be unique"),
])
def test_bad_spare_group_is_one_line_naming_the_key(tmp_path: Path, change, needle: str) -> None:
    assert load_manifest(write(tmp_path, CITUS_MINIMAL)).spare_group().name == "w9"
    with pytest.raises(ManifestError) as err:
        load_manifest(write(tmp_path, change(CITUS_MINIMAL)))
    assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_only_spare_groups_is_no_stack(tmp_path: Path) -> None:
    text = MINIMAL.replace('role = "standalone"', 'role = "worker"').replace(
        'members = ["p1", "p2"]', 'members = ["p1", "p2"]\nspare = true')
    with pytest.raises(ManifestError, match="needs at least one group that is not a spare"):
        load_manifest(write(tmp_path, text))


def test_alerting_is_a_capability_of_the_profiles_that_ship_it(tmp_path: Path) -> None:
    for manifest in (COMPOSE_DIR / "pgchaos.toml", COMPOSE_DIR / "citus" / "pgchaos.toml"):
        m = load_manifest(manifest)
        assert m.capabilities()["alerting"] == 1
        assert m.monitoring is not None and {"alertmanager", "alert-receiver"} <= set(m.services())
    assert "alerting" not in load_manifest(FOREIGN).capabilities()
    extra = '[monitoring]\nalertmanager = "am"\nalertmanager_port = 19093\n'
    own = load_manifest(write(tmp_path, MINIMAL + extra))
    assert own.monitoring.alertmanager_port == 19093 and own.monitoring.alert_receiver is None
