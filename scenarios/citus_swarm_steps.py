"""Steps shared by the Citus-on-Swarm scenarios (`--profile citus --engine swarm|swarm-nodes`).

The operations guide's `docker …` commands run as written, through the
swarm's manager (`DOCKER_HOST`), with one substitution: the stack's name
(`postgres-mesh` in the guide, the run's own name here). Each is recorded as
a runbook step of the guide (its command line, exit code and the tail of its
output; a failure is a finding with the CLI's own error); a command that
changes the cluster is also the scenario's fault (`nemesis.custom`), so RTO
runs from the moment it is typed.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

from harness.citus_runbooks import Runbook
from harness.engines.swarm.deployment import SwarmDeployment
from harness.scenario import ScenarioError, ScenarioRun

GUIDE_STACK = "postgres-mesh"
HEALTHY_REPLICAS = r"1/1\|3/3\|4/4"  # the guide's daily check: grep -v "1/1\|3/3\|4/4"


def swarm_of(run: ScenarioRun) -> SwarmDeployment:
    dep = run.stack.deployment
    if not isinstance(dep, SwarmDeployment):
        raise ScenarioError(f"this scenario needs a Swarm engine; the stack runs on {dep.name}")
    return dep


def as_written(run: ScenarioRun, command: str) -> str:
    """The guide's command line with the run's stack name in place of `postgres-mesh`."""
    return command.replace(GUIDE_STACK, swarm_of(run).project)


def docker_command(run: ScenarioRun, book: Runbook, label: str, command: str, guide: bool = True,
                   timeout_s: float = 300.0) -> dict[str, Any]:
    """Run one `docker …` command line (a shell line: the guide pipes into grep) against the
    swarm's manager and record it as a runbook step; the step (ok, exit code, output tail)."""
    dep = swarm_of(run)
    line = as_written(run, command)
    started = time.monotonic()
    try:
        proc = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=timeout_s,
                              env=dep.cli_env())
        code, out = proc.returncode, (proc.stdout + proc.stderr).strip()
    except subprocess.TimeoutExpired:
        code, out = 124, f"timed out after {timeout_s:.0f} s"
    tail = [ln for ln in out.splitlines() if ln.strip()][-12:]
    error = None if code == 0 else (" | ".join(tail[-3:]) or f"exit {code}")
    book.note(label, guide=guide, ok=code == 0, error=error, command=line, exit=code, output=tail,
              seconds=round(time.monotonic() - started, 1))
    return book.steps[-1]


def replica_check(run: ScenarioRun, book: Runbook, label: str) -> dict[str, Any]:
    """The guide's daily `docker stack services postgres-mesh | grep -v "1/1\\|3/3\\|4/4"`, as
    written: grep exits 1 when nothing is left to show (every service at a healthy count) and
    0 when it prints a line — the header, or a service whose count is not 1/1, 3/3 or 4/4.
    Recorded with what it printed, and the services it flags (besides the header)."""
    step = docker_command(run, book, label, f'docker stack services {GUIDE_STACK} | grep -v "{HEALTHY_REPLICAS}"')
    flagged = [ln for ln in step.get("output") or [] if not ln.startswith("ID ")]
    step.update(ok=step.get("exit") in (0, 1), flagged=flagged)
    step.pop("error", None)
    run.figures.setdefault("replica_checks", []).append({"step": label, "flagged": flagged})
    return step


def guide_fault(run: ScenarioRun, book: Runbook, label: str, command: str,
                seen: Callable[[], tuple[bool, str]], timeout_s: float = 600.0) -> Any:
    """A guide command that changes the cluster, as the scenario's fault: recorded from the
    moment it starts; the command runs attached (as typed: it returns once Swarm reports the
    service converged), its step recorded; `seen` says whether it bit. Healed when it returns
    (nothing to undo: Swarm converged), so recovery is judged from there on."""
    dep = swarm_of(run)
    target = as_written(run, command).split()[-1]

    def inject() -> Callable[[], None]:
        step = docker_command(run, book, label, command, timeout_s=timeout_s)
        if not step["ok"]:
            raise RuntimeError(step["error"])
        return lambda: None

    active = run.nemesis.custom("guide-command", target, inject, seen, command=as_written(run, command),
                                stack=dep.project)
    run.nemesis.heal(active)
    return active


def running_tasks(dep: SwarmDeployment, service: str) -> dict[int, str]:
    """Slot -> running task id of a stack-file service."""
    out: dict[int, str] = {}
    for task in dep.docker.api.tasks(filters={"service": dep.swarm_service(service), "desired-state": "running"}):
        if (task.get("Status") or {}).get("State") == "running":
            out[int(task.get("Slot") or 0)] = task["ID"]
    return out


def replaced(dep: SwarmDeployment, service: str, before: dict[int, str]) -> Callable[[], tuple[bool, str]]:
    """An effect check: every slot that ran before runs a new task now."""

    def seen() -> tuple[bool, str]:
        now = running_tasks(dep, service)
        same = sorted(s for s, t in before.items() if now.get(s) == t)
        was = [before[s][:12] for s in sorted(before)]
        is_now = [now.get(s, "-")[:12] for s in sorted(before)]
        return not same, (f"{dep.swarm_service(service)}: slots {sorted(before)} ran tasks {was}; now {is_now}"
                          + (f"; not replaced: slots {same}" if same else ""))

    return seen
