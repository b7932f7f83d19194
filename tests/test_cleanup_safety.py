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
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from offset_stack import OFFSET_ENV, STATE_DIR, offset_env  # noqa: E402,F401 - fixture

from harness.errors import PgchaosError
from harness.nemesis import Nemesis
from harness.stack import Stack, StackSpec
from harness.stack.gc import DETACHED_LABEL, PID_LABEL, collect, pid_alive
from harness.stack.spec import shifted_ports
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


def start_runner(folder: Path, ports: dict[str, str]) -> Runner:
    """`pytest scenarios/test_coordinator_hard_loss.py` on a stack of its own (`ports`), in its
    own process group, as a terminal's foreground job would be."""
    folder.mkdir(parents=True, exist_ok=True)
    reports, log = folder / "reports", folder / "runner.log"
    cmd = [sys.executable, "-m", "pytest", SCENARIO, "-p", "no:cacheprovider", "-q",
           "--reports-dir", str(reports)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env={**os.environ, **OFFSET_ENV, **ports},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=default_sigint)
    return Runner(proc, reports, log)


def end_runner(run: Runner) -> None:
    """Whatever happened to the test: the runner and its load ended."""
    if run.proc.poll() is None:
        os.killpg(run.proc.pid, signal.SIGKILL)
        run.proc.wait(timeout=30)
    for pid in load_processes(run.reports):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# The three runs under test, at once, each on ports of its own (the defaults moved by these
# offsets; clear of each other, of the session's stack and of the kernel's ephemeral range).
RUNS: dict[str, int] = {"sigint-once": 20000, "sigint-again-in-teardown": 21000, "kill-9": 22000}


@pytest.fixture
def runners(tmp_path: Path) -> Iterator[dict[str, Runner]]:
    """The scenario runs under test; whatever happens to the test, they are ended and
    what they leave is collected."""
    started: dict[str, Runner] = {}
    try:
        for name, offset in RUNS.items():
            started[name] = start_runner(tmp_path / name, shifted_ports(offset))
        yield started
    finally:
        for run in started.values():
            end_runner(run)
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


@dataclass
class Outcome:
    """What one run under test came to: its project, the leftovers after it exited, its
    exit code, the load processes still there, and what went wrong on the way."""

    project: str = ""
    returncode: int | None = None
    left: dict[str, list[str]] = field(default_factory=dict)
    load_left: list[int] = field(default_factory=list)
    error: str = ""


def interrupt(run: Runner, again_in_teardown: bool, outcome: Outcome) -> None:
    """Ctrl-C to the whole foreground group once the kill is injected (and the impatient
    second Ctrl-C while the stack is being removed); then the run's exit and leftovers."""
    client = docker_client()
    try:
        outcome.project = wait_for_fault(run, client)
        os.killpg(run.proc.pid, signal.SIGINT)
        if again_in_teardown:
            if not wait_for_teardown(run, client, outcome.project):
                raise AssertionError(f"no teardown seen:\n{run.tail()}")
            os.killpg(run.proc.pid, signal.SIGINT)
        try:
            outcome.returncode = run.proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the interrupted run did not exit within 300 s:\n{run.tail()}") from None
        outcome.left = leftovers(client, outcome.project)
        outcome.load_left = load_processes(run.reports)
    except Exception as exc:  # reported by the test, in the main thread
        outcome.error = f"{type(exc).__name__}: {exc}"


def kill_9(run: Runner, outcome: Outcome) -> None:
    """kill -9 of the runner once the kill is injected; its load must die with it, its stack stays."""
    client = docker_client()
    try:
        outcome.project = wait_for_fault(run, client)
        os.kill(run.proc.pid, signal.SIGKILL)
        outcome.returncode = run.proc.wait(timeout=30)
        # The locust child dies with its runner (PR_SET_PDEATHSIG), kill -9 included.
        deadline = time.monotonic() + 20
        while load_processes(run.reports) and time.monotonic() < deadline:
            time.sleep(0.5)
        outcome.load_left = load_processes(run.reports)
        outcome.left = leftovers(client, outcome.project)
    except Exception as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"


@pytest.mark.beside(weight=3)  # nothing here is timed: it runs beside the unit session
def test_interrupted_or_killed_during_a_fault(client: Any, others: dict[str, tuple[str, str]],
                                              runners: dict[str, Runner]) -> None:
    """Three runs of the hard-loss scenario at once, each on a stack of its own, each ended
    while its kill is injected: Ctrl-C leaves nothing, a second Ctrl-C during the teardown
    too; kill -9 leaves the stack (and no load) until `pgchaos gc`, which removes that dead
    run only. No run removes anyone else's containers."""
    outcomes = {name: Outcome() for name in RUNS}
    threads = [threading.Thread(target=interrupt, args=(runners["sigint-once"], False, outcomes["sigint-once"])),
               threading.Thread(target=interrupt, args=(runners["sigint-again-in-teardown"], True,
                                                        outcomes["sigint-again-in-teardown"])),
               threading.Thread(target=kill_9, args=(runners["kill-9"], outcomes["kill-9"]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a run under test did not end within 600 s"
    for name, outcome in outcomes.items():
        assert not outcome.error, f"{name}: {outcome.error}\n{runners[name].tail()}"

    for name in ("sigint-once", "sigint-again-in-teardown"):
        run, outcome = runners[name], outcomes[name]
        assert outcome.returncode == pytest.ExitCode.INTERRUPTED, f"{name}:\n{run.tail()}"
        assert outcome.left == {}, f"{name}: {outcome.left}\n{run.tail()}"
        assert outcome.load_left == [], name
        # The interrupted run removed no other run: its gc named none of them.
        output = run.log.read_text(errors="replace")
        assert not any(p in removed_by(output) for _, p in others.values() if "gc: removed" in output), output

    killed = outcomes["kill-9"]
    assert killed.load_left == [], "the load outlived its killed runner"
    assert killed.left, "a killed run should leave its stack behind"
    gc = pgchaos_gc()
    assert gc.returncode == 0, gc.stderr
    assert killed.project in removed_by(gc.stdout), gc.stdout
    assert leftovers(client, killed.project) == {}, gc.stdout
    assert not any(p in removed_by(gc.stdout) for _, p in others.values()), gc.stdout
    # every container that went away belongs to a run that ended or removed its own stack
    # meanwhile (on a shared engine other live runs tear down their stacks too)
    assert [n for n in gone(client, others) if whole_project_left(client, others, n)] == [], \
        "someone else's containers went away"


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
