"""Cleanup and safety on live stacks: an interrupted or killed run leaves
nothing behind (after `pgchaos gc` for a killed one), and nothing that is
not ours is ever touched, whatever its name or labels say."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from offset_stack import OFFSET_ENV, STATE_DIR, offset_env  # noqa: E402,F401 - fixture

from harness.errors import PgchaosError
from harness.nemesis import Nemesis
from harness.stack import Stack, StackSpec
from harness.stack.gc import DETACHED_LABEL, PID_LABEL, collect, pid_alive
from harness.stack.stack import OWNER_LABEL, PROJECT_LABEL, SERVICE_LABEL, docker_client
from harness.stack.steady_state import steady_state

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("offset_env"), pytest.mark.own_stack]

REPO_ROOT = Path(__file__).resolve().parents[1]
OURS = f"{OWNER_LABEL}=pgchaos"
SCENARIO = "scenarios/test_coordinator_hard_loss.py"
OWNER_LABELS: dict[str, dict[str, str]] = {}  # project -> labels of one of its containers, as first seen


@pytest.fixture
def client() -> Any:
    return docker_client()


@pytest.fixture
def others(client: Any) -> dict[str, tuple[str, str]]:
    """Containers labelled as ours that exist before the test (someone else's runs):
    id -> (name, project). One-shot `compose run --rm` containers (backup tools) end
    and remove themselves: they are not counted."""
    found = [c for c in client.containers.list(all=True, filters={"label": OURS}, ignore_removed=True)
             if c.labels.get("com.docker.compose.oneoff") != "True"]
    for c in found:
        OWNER_LABELS.setdefault(c.labels.get(PROJECT_LABEL, ""), dict(c.labels))
    return {c.id: (c.name, c.labels.get(PROJECT_LABEL, "")) for c in found}


# -- an interrupted or killed scenario run -------------------------------------------------
@dataclass
class Runner:
    """A `pytest scenarios/...` subprocess in its own process group."""

    proc: subprocess.Popen[bytes]
    reports: Path
    log: Path

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def default_sigint() -> None:
    """In the runner before exec: SIGINT's default disposition. Started from a
    background job of a non-interactive shell, we inherit SIGINT ignored, and
    so would the runner (Python then installs no KeyboardInterrupt handler and
    the Ctrl-C under test would never arrive)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    """The scenario run under test; whatever happens to the test, it is ended
    and what it leaves is collected."""
    reports, log = tmp_path / "reports", tmp_path / "runner.log"
    cmd = [sys.executable, "-m", "pytest", SCENARIO, "-p", "no:cacheprovider", "-q",
           "--reports-dir", str(reports)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env={**os.environ, **OFFSET_ENV},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=default_sigint)
    run = Runner(proc, reports, log)
    yield run
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    for pid in load_processes(reports):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if (STATE_DIR / "runs").exists() and any((STATE_DIR / "runs").iterdir()):
        pgchaos_gc()


def wait_for_fault(runner: Runner, client: Any, timeout_s: float = 240.0) -> str:
    """The runner's compose project, once its stack is up and the kill was injected."""
    deadline = time.monotonic() + timeout_s
    project = None
    while time.monotonic() < deadline:
        assert runner.proc.poll() is None, f"the run ended early:\n{runner.tail()}"
        if project is None:
            mine = client.containers.list(filters={"label": [OURS, f"{PID_LABEL}={runner.proc.pid}"]},
                                          ignore_removed=True)
            project = mine[0].labels[PROJECT_LABEL] if mine else None
        if project is not None and injected(runner.reports, "kill"):
            return project
        time.sleep(0.5)
    raise AssertionError(f"no stack with an injected kill after {timeout_s:.0f} s:\n{runner.tail()}")


def injected(reports: Path, fault: str) -> bool:
    for path in reports.glob("*/*/history-harness.jsonl"):
        for line in path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a line being written
                op = json.loads(line)
                if op.get("process") == "nemesis" and op.get("f") == fault:
                    return True
    return False


def leftovers(client: Any, project: str) -> dict[str, list[str]]:
    """Everything of one run that still exists: containers, networks, volumes, mounts, loops, state."""
    by_project = {"label": f"{PROJECT_LABEL}={project}"}
    run_dir = STATE_DIR / "runs" / project.removeprefix("pgchaos-")
    with open("/proc/mounts") as mounts:
        mounted = [line.split()[1] for line in mounts if str(run_dir) in line]
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout.splitlines()
    found = {
        "containers": [c.name for c in client.containers.list(all=True, filters=by_project,
                                                              ignore_removed=True)],
        "networks": [n.name for n in client.networks.list(filters=by_project)],
        "volumes": [v.name for v in client.volumes.list(filters=by_project)],
        "mounts": mounted,
        "loop devices": [line for line in loops if str(run_dir) in line],
        "state": [str(run_dir)] if run_dir.exists() else [],
    }
    return {kind: items for kind, items in found.items() if items}


def load_processes(reports: Path) -> list[int]:
    """Locust subprocesses of a run, found by the history path in their environment."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if f"PGCHAOS_HISTORY={reports}".encode() in environ:
            found.append(int(proc.name))
    return found


def gone(client: Any, others: dict[str, tuple[str, str]]) -> list[str]:
    """Names of the containers in `others` that no longer exist, leaving out those of
    runs that ended meanwhile (on a shared engine, other runs remove their own stacks;
    an owner that is still alive, or detached, did not)."""
    ended = {project for _, project in others.values() if not owner_alive(client, project)}
    present = {c.id for c in client.containers.list(all=True, filters={"label": OURS}, ignore_removed=True)}
    return [name for cid, (name, project) in others.items() if cid not in present and project not in ended]


def whole_project_left(client: Any, others: dict[str, tuple[str, str]], name: str) -> bool:
    """Some containers of `name`'s project remain: a partial removal, which no run's own
    teardown does (a run that removed its own stack leaves nothing of it)."""
    project = next(p for n, p in others.values() if n == name)
    return bool(client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project}"},
                                       ignore_removed=True))


def owner_alive(client: Any, project: str) -> bool:
    """The run that owns `project` is alive: its owner process runs, or it was started
    detached (read from whatever of it remains, else from what was seen at the start)."""
    found = client.containers.list(all=True, filters={"label": [OURS, f"{PROJECT_LABEL}={project}"]},
                                   ignore_removed=True)
    labels = found[0].labels if found else OWNER_LABELS.get(project, {})
    return labels.get(DETACHED_LABEL) == "true" or pid_alive(int(labels.get(PID_LABEL, "0") or 0))


def removed_by(gc_output: str) -> str:
    """The part of `pgchaos gc` output that names removed runs (not the kept ones)."""
    return gc_output.split("kept live runs")[0]


def pgchaos_gc() -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", "gc"], cwd=REPO_ROOT, capture_output=True,
                          text=True, env={**os.environ, **OFFSET_ENV}, timeout=300)


def wait_for_teardown(runner: Runner, client: Any, project: str, timeout_s: float = 240.0) -> bool:
    """True once the stack is being removed (the workers, never faulted here, go down)."""
    deadline = time.monotonic() + timeout_s
    while runner.proc.poll() is None and time.monotonic() < deadline:
        found = client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project}"},
                                       ignore_removed=True)
        workers = [c for c in found if c.labels.get(SERVICE_LABEL, "").startswith("worker-")]
        if len(workers) < 2 or any(c.status != "running" for c in workers):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("again_in_teardown", [False, True], ids=["once", "again-in-teardown"])
def test_sigint_during_a_fault_leaves_nothing(client: Any, others: dict[str, tuple[str, str]], runner: Runner,
                                              again_in_teardown: bool) -> None:
    project = wait_for_fault(runner, client)
    os.killpg(runner.proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
    if again_in_teardown:  # the impatient second Ctrl-C, while the stack is being removed
        assert wait_for_teardown(runner, client, project), runner.tail()
        os.killpg(runner.proc.pid, signal.SIGINT)
    try:
        runner.proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the interrupted run did not exit within 300 s:\n{runner.tail()}")
    assert runner.proc.returncode == pytest.ExitCode.INTERRUPTED, runner.tail()
    assert leftovers(client, project) == {}, runner.tail()
    assert load_processes(runner.reports) == []
    # The interrupted run removed no other run: its gc named none of them, and every
    # container that went away belongs to a run that ended or removed its own stack
    # meanwhile (on a shared engine other live runs tear down their stacks too).
    output = runner.log.read_text(errors="replace")
    assert not any(p in removed_by(output) for _, p in others.values() if "gc: removed" in output), output
    assert [n for n in gone(client, others) if whole_project_left(client, others, n)] == [], \
        "someone else's containers went away"


def test_kill_9_then_gc_removes_the_dead_run_only(client: Any, others: dict[str, tuple[str, str]],
                                                  runner: Runner) -> None:
    project = wait_for_fault(runner, client)
    os.kill(runner.proc.pid, signal.SIGKILL)
    runner.proc.wait(timeout=30)
    # The locust child dies with its runner (PR_SET_PDEATHSIG), kill -9 included.
    deadline = time.monotonic() + 20
    while load_processes(runner.reports) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert load_processes(runner.reports) == [], "the load outlived its killed runner"
    assert leftovers(client, project), "a killed run should leave its stack behind"

    gc = pgchaos_gc()
    assert gc.returncode == 0, gc.stderr
    assert project in removed_by(gc.stdout), gc.stdout
    assert leftovers(client, project) == {}, gc.stdout
    assert gone(client, others) == [], f"gc removed someone else's containers: {gc.stdout}"
    assert not any(p in removed_by(gc.stdout) for _, p in others.values()), gc.stdout


# -- containers that are not ours --------------------------------------------------------------
def test_lookalike_containers_are_never_touched(client: Any, monkeypatch: pytest.MonkeyPatch,
                                                pgchaos_stack: Stack) -> None:
    """...and a second stack beside the session's, on ports of its own, comes up and down
    leaving nothing (no container, network, volume, mount, loop device or state folder),
    the session's stack untouched."""
    # Same name and service label as one of ours, no ownership label.
    foreign = client.containers.run("debian:trixie-slim", ["sleep", "300"], name="coordinator-1",
                                    labels={SERVICE_LABEL: "coordinator-1"}, detach=True)
    try:
        with Stack(StackSpec()) as stack:
            nemesis = Nemesis(stack)
            fault = nemesis.inject("kill", "coordinator-1")
            ours = stack.container("coordinator-1")
            assert fault.target == "coordinator-1" and ours.id != foreign.id
            for _ in range(40):
                ours.reload()
                if ours.status == "exited":
                    break
                time.sleep(0.25)
            assert ours.status == "exited"
            foreign.reload()
            assert foreign.status == "running"
            nemesis.heal(fault)

            # One that claims our project and service, with someone else's owner label.
            impostor = client.containers.run(
                "debian:trixie-slim", ["sleep", "300"], detach=True,
                labels={PROJECT_LABEL: stack.project, SERVICE_LABEL: "coordinator-2",
                        OWNER_LABEL: "someone-else"})
            try:
                assert nemesis.owned("coordinator-2").id != impostor.id
                # Even if the engine's lookup ever handed it over, the engine refuses it
                # (every verb a fault uses goes through the engine's owned container).
                real = stack.deployment._listed  # the compose engine's one listing
                with monkeypatch.context() as patch:
                    patch.setattr(stack.deployment, "_listed",
                                  lambda service=None: {**real(service), "coordinator-2": impostor})
                    with pytest.raises(PgchaosError, match="refusing to touch"):
                        nemesis.inject("kill", "coordinator-2")
                    with pytest.raises(PgchaosError, match="refusing to touch"):
                        stack.deployment.stop("coordinator-2")
                impostor.reload()
                assert impostor.status == "running"

                gc = pgchaos_gc()  # another process: this run's owner (us) is alive
                assert gc.returncode == 0, gc.stderr
                assert stack.project not in removed_by(gc.stdout), gc.stdout
                for container in (foreign, impostor):
                    container.reload()
                    assert container.status == "running", gc.stdout
            finally:
                impostor.remove(force=True)
        assert leftovers(client, stack.project) == {}
        assert steady_state(pgchaos_stack).healthy  # the session's stack was not touched
        report = collect()
        foreign.reload()
        assert foreign.status == "running", str(report)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            foreign.remove(force=True)
