"""A stack in another shape than the reference (tests/foreign: patroni1..3, three
etcd members, HAProxy only, Patroni ttl 30, database `shop`), described by its
own manifest: provisioned by pgchaos from its own compose file, then attached to
while it runs (one bring-up serves both: the provisioned session keeps it with
--keep-stack, the attach flow finds it by its compose project, and `pgchaos down`
removes it at the end). Scenarios give verdicts with figures; those that need a
pooler or Toxiproxy are skipped naming the capability."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.engines.base import docker_client
from harness.verdict import exit_status

# its own stack on ephemeral ports, in the live session: its graceful stops (3-5 s against 10 s on a
# quiet machine) took 13.5 s beside two other stacks on 2 cores
pytestmark = [pytest.mark.docker, pytest.mark.own_stack]

FOREIGN = Path(__file__).parent / "foreign"
MANIFEST = FOREIGN / "pgchaos.toml"
REPO = Path(__file__).resolve().parents[1]
# the provisioned stack's state folder, its own: the kept run is found (and removed) there
STATE_DIR = Path("/var/lib/pgchaos-foreign")
# (the hard kill of its leader: the drill of the attach test, DR scenario 1, judges it)
SCENARIOS = ["coordinator_graceful_stop", "switchover_and_failover", "dcs_member_loss", "pool_exhaustion",
             "network_lag"]


def run_scenarios(tmp_path: Path, names: list[str], *extra: str, env: dict[str, str] | None = None
                  ) -> tuple[subprocess.CompletedProcess[str], dict[str, dict]]:
    """`pgchaos run NAMES --manifest F` (provision mode: pytest underneath, the plugin's flow)."""
    reports = tmp_path / "reports"
    cmd = [sys.executable, "-m", "harness.cli", "run", *names, "--manifest", str(MANIFEST),
           "--reports-dir", str(reports), "--", "-q", "-rs", "--load-users", "1",
           "--deselect", "scenarios/test_switchover_and_failover.py::test_patronictl_operation[failover]", *extra]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200, env=env)
    verdicts = {p.parent.name: json.loads(p.read_text()) for p in reports.glob("*/*/verdict.json")}
    return proc, verdicts


def pgchaos(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    state = {"PGCHAOS_STATE_DIR": str(tmp_path / "state")}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=REPO, capture_output=True, text=True,
                          env={**(env or os.environ), **state}, timeout=300)


def heal_by_cli(tmp_path: Path, project: str, env: dict[str, str]) -> None:
    """A fault injected by `pgchaos inject … --attach` is healed by the command it prints,
    found while the member is down (and `heal --all` finds the project too)."""
    attach = ["--manifest", str(MANIFEST), "--attach"]
    injected = pgchaos(tmp_path, "inject", "kill", "primary", *attach, env=env)
    assert injected.returncode == 0, injected.stderr
    hint = injected.stdout.split("heal with: ", 1)[1].split()
    assert hint[:3] == ["pgchaos", "heal", "0"] and hint[3:] == [*attach, project], injected.stdout
    status = pgchaos(tmp_path, "status", *attach, env=env)  # a member down: shown, not refused
    assert status.returncode == 1 and "UNHEALTHY" in status.stdout, status.stdout + status.stderr
    healed = pgchaos(tmp_path, *hint[1:], env=env)
    assert healed.returncode == 0 and "healed: #0 kill" in healed.stdout, healed.stderr
    again = pgchaos(tmp_path, "heal", "--all", *attach, env=env)
    assert again.returncode == 0, again.stderr
    deadline = time.monotonic() + 120
    while pgchaos(tmp_path, "status", *attach, env=env).returncode != 0:  # back to the steady state
        assert time.monotonic() < deadline, "the attached stack did not become healthy after the heal"
        time.sleep(3)


@dataclass
class Provisioned:
    proc: subprocess.CompletedProcess[str]
    verdicts: dict[str, dict]
    project: str  # the kept stack's compose project


def _state_env() -> dict[str, str]:
    return {**os.environ, "PGCHAOS_STATE_DIR": str(STATE_DIR)}


def _kept_runs() -> list[str]:
    runs = STATE_DIR / "runs"
    return sorted(p.name for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []


def in_state_dir(*args: str) -> subprocess.CompletedProcess[str]:
    """A pgchaos command in the foreign stack's state folder, where the kept stack is."""
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=REPO, capture_output=True,
                          text=True, env=_state_env(), timeout=600)


def _down(run_id: str) -> subprocess.CompletedProcess[str]:
    return in_state_dir("down", "--run-id", run_id)


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provisioned]:
    """pgchaos provisions the foreign stack from its manifest and runs the scenarios on it,
    keeping it up (--keep-stack); the attach test then works on that same running stack.
    Removed at the end by `pgchaos gc --all` (after `pgchaos gc` kept it), whatever the tests said."""
    for leftover in _kept_runs():  # a stack kept by a run that died before removing it (gc keeps kept ones)
        _down(leftover)
    assert not _kept_runs(), f"stacks left in {STATE_DIR}: {_kept_runs()}"
    proc, verdicts = run_scenarios(tmp_path_factory.mktemp("provisioned"), SCENARIOS, "--keep-stack",
                                   env=_state_env())
    kept = _kept_runs()
    try:
        assert len(kept) == 1, f"one kept stack expected in {STATE_DIR}, found {kept}\n" + (
            proc.stdout + proc.stderr)[-2000:]
        yield Provisioned(proc, verdicts, f"pgchaos-{kept[0]}")
    finally:
        # `pgchaos gc` keeps a kept (detached) stack of the manifest; `gc --all` removes it
        # (`pgchaos down` of a manifest's stack: the gate's test, tests/test_gate_live.py)
        kept_by_gc = in_state_dir("gc")
        collected = in_state_dir("gc", "--all")
        for run_id in _kept_runs():  # what gc did not remove, so that nothing is left
            _down(run_id)
        projects = [f"pgchaos-{r}" for r in kept]
        assert kept_by_gc.returncode == 0 and "kept live runs" in kept_by_gc.stdout and all(
            p in kept_by_gc.stdout.split("kept live runs", 1)[1] for p in projects), kept_by_gc.stdout
        assert collected.returncode == 0 and all(p in collected.stdout.split("kept live runs", 1)[0]
                                                 for p in projects), collected.stdout + collected.stderr
        assert not _kept_runs(), f"pgchaos gc --all left {_kept_runs()} in {STATE_DIR}"
        left = [c.name for p in projects for c in docker_client().containers.list(
            all=True, filters={"label": f"com.docker.compose.project={p}"})]
        assert not left, f"pgchaos gc --all left {left}"


def test_foreign_stack_provisioned_from_its_manifest(provisioned: Provisioned) -> None:
    proc, verdicts = provisioned.proc, provisioned.verdicts
    out = proc.stdout + proc.stderr
    print(out[-3000:])
    for name in ("test_pool_exhaustion", "test_network_lag"):
        assert name not in verdicts, f"{name} ran on a stack without its capability"
    assert "lacks: pooler" in out and "lacks: client-link" in out, out[-2000:]
    for name in ("test_coordinator_graceful_stop", "test_patronictl_switchover", "test_dcs_member_loss"):
        v = verdicts.get(name)
        assert v is not None, f"{name}: no verdict\n{out[-2000:]}"
        print(f"{name}: {v['verdict']} RTO {v['rto_s']} lost {v['rpo'].get('lost')}")
        assert v["rpo"]["lost"] == 0, v["reasons"]
        assert v["rto_s"]["write"] is not None, v["reasons"]
    for name in ("test_coordinator_graceful_stop", "test_patronictl_switchover", "test_dcs_member_loss"):
        assert verdicts[name]["verdict"] in ("pass", "marginal"), verdicts[name]["reasons"]


def test_foreign_stack_provisioned_takes_every_stack_command(provisioned: Provisioned, tmp_path: Path) -> None:
    """Provision mode after `run --keep-stack` (a stack of the manifest that pgchaos started, as
    `pgchaos up --manifest F` leaves one): status, inject and heal find it in the state folder
    (the hint names it by run id), and certify of the same manifest reuses it rather than
    bringing up another."""
    run_id = provisioned.project.removeprefix("pgchaos-")
    status = in_state_dir("status")
    assert status.returncode == 0 and f"stack {provisioned.project}: HEALTHY" in status.stdout, \
        status.stdout + status.stderr
    endpoints = json.loads(in_state_dir("status", "--json").stdout)["endpoints"]
    injected = in_state_dir("inject", "stop", "replica")
    assert injected.returncode == 0, injected.stdout + injected.stderr
    hint = injected.stdout.split("heal with: ", 1)[1].split()
    assert hint == ["pgchaos", "heal", "0", "--run-id", run_id], injected.stdout
    healed = in_state_dir(*hint[1:])
    assert healed.returncode == 0 and "healed: #0 stop" in healed.stdout, healed.stdout + healed.stderr
    deadline = time.monotonic() + 120
    while in_state_dir("status").returncode != 0:  # back to the steady state
        assert time.monotonic() < deadline, "the kept stack did not become healthy after the heal"
        time.sleep(3)
    reports = tmp_path / "certify"
    certified = in_state_dir("certify", "--manifest", str(MANIFEST), "--reports-dir", str(reports), "--",
                             "-k", "dcs_member_loss", "--load-users", "1")
    out = certified.stdout + certified.stderr
    verdicts = {p.parent.name: json.loads(p.read_text()) for p in reports.glob("certify-*/rep-1/*/*/verdict.json")}
    (before,) = reports.glob("certify-*/rep-1/*/test_dcs_member_loss/steady-state-before.json")
    assert json.loads(before.read_text())["endpoints"]["router"] == endpoints["router"], "not the kept stack"
    v = verdicts.get("test_dcs_member_loss")
    assert v is not None and v["rpo"]["lost"] == 0, (v or {}).get("reasons", out[-2000:])
    assert certified.returncode == exit_status([v["verdict"]]) and "1 executed" in out, out[-2000:]
    assert _kept_runs() == [run_id], _kept_runs()  # reused, so left up


def test_foreign_stack_attached_is_left_running_and_unharmed(provisioned: Provisioned, tmp_path: Path) -> None:
    """The attach flow on the running stack (the one provisioned above, found by its compose
    project): `pgchaos certify --attach` with one scenario, a fault injected and healed by the CLI, and the
    stack left as it was: the same containers, running and healthy, none relabelled."""
    project = provisioned.project
    env = dict(os.environ)
    compose = ["docker", "compose", "-p", project]
    client = docker_client()
    before = {c.name: (c.id, c.labels.get("io.pgchaos.run")) for c in client.containers.list(
        filters={"label": f"com.docker.compose.project={project}"})}
    assert len(before) >= 7, before  # patroni1..3, etcd1..3, lb
    # the user's flow: `pgchaos certify --manifest F --attach PROJECT`, one scenario selected
    reports = tmp_path / "certify"
    proc = pgchaos(tmp_path, "certify", "--manifest", str(MANIFEST), "--attach", project,
                   "--reports-dir", str(reports), "--", "-k", "graceful_stop", "--load-users", "1", env=env)
    out = proc.stdout + proc.stderr
    print(out[-2000:])
    verdicts = {p.parent.name: json.loads(p.read_text()) for p in reports.glob("certify-*/rep-1/*/*/verdict.json")}
    v = verdicts.get("test_coordinator_graceful_stop")
    assert v is not None and v["verdict"] in ("pass", "marginal"), (v or {}).get("reasons", out[-2000:])
    # certify's documented exit: 0 for a pass, 3 for a marginal verdict (an RTO within the margin
    # of its bound: this stack's HAProxy checks, inter 3 s x fall 3, keep a graceful stop near 10 s)
    assert proc.returncode == exit_status([v["verdict"]]) and "1 executed" in out, out[-2000:]
    assert list(reports.glob("certify-*/rep-1/*/certification.html")), "no certification page"
    heal_by_cli(tmp_path, project, env)
    attach = ["--manifest", str(MANIFEST), "--attach", project]
    # `pgchaos up --attach`: nothing brought up, the running stack checked and shown
    up = pgchaos(tmp_path, "up", *attach, "--json", env=env)
    assert up.returncode == 0 and json.loads(up.stdout)["healthy"], up.stdout + up.stderr
    # `pgchaos list --attach`: the scenarios that apply, and why the others skip
    listed = pgchaos(tmp_path, "list", *attach, "--json", env=env)
    on_stack = json.loads(listed.stdout)["on_stack"]
    assert on_stack["pool_exhaustion"]["lacks"] and not on_stack["coordinator_graceful_stop"]["lacks"], on_stack
    # `pgchaos run --attach` of a scenario the stack cannot take: skipped naming what it lacks,
    # and a run that certified nothing does not exit 0 (the scenarios it can take: certify above)
    lacking = pgchaos(tmp_path, "run", "pool_exhaustion", *attach, "--reports-dir", str(tmp_path / "run"), env=env)
    said = lacking.stdout + lacking.stderr
    assert lacking.returncode == 1 and "lacks: pooler" in said and "nothing was certified" in said, said[-2000:]
    # the guide's DR scenario 1 walked on the attached stack (its leader killed): judged, RPO
    # included, the member restarted by its step. ttl 30: the kill is noticed only when the
    # leader key expires, past the 10 s target and past the hard-kill waiver's 25 s
    drill = pgchaos(tmp_path, "drill", "coordinator-failure", *attach, "--yes", "--json",
                    "--reports-dir", str(tmp_path / "drill"), env=env)
    start = drill.stdout.rfind('{\n  "verdict"')  # the --json summary, after the steps' output
    summary = json.loads(drill.stdout[start:]) if start >= 0 else {}
    print(drill.stdout[-2000:])
    said = (drill.stdout + drill.stderr)[-3000:]
    assert summary.get("lost") == 0 and summary["rto_s"].get("write") is not None, said
    assert drill.returncode == exit_status([summary["verdict"]]), drill.stdout[-2000:]
    assert summary["rto_s"]["write"] > 10 and summary["verdict"] == "fail", said
    assert [s["choice"] for s in summary["steps"]] == ["run"] * 4, summary["steps"]
    assert not [s for s in summary["steps"] if s.get("error")], summary["steps"]
    after = client.containers.list(filters={"label": f"com.docker.compose.project={project}"})
    # the same containers, none removed or replaced, none relabelled as a run of the attached sessions
    assert {c.name: (c.id, c.labels.get("io.pgchaos.run")) for c in after} == before
    assert all(c.status == "running" for c in after)
    ps = subprocess.run([*compose, "ps", "--format", "json"], env=env, capture_output=True, text=True)
    health = [json.loads(line).get("Health") for line in ps.stdout.splitlines() if line.strip()]
    assert health and all(h in ("", "healthy") for h in health), health
