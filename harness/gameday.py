"""Game days: faults injected and healed from the command line on the stack
of `pgchaos up`, recorded in that stack's game-day history, and drills that
walk an SRE through the guide's runbook step by step."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import PgchaosError
from harness.history import HistoryWriter, read_history
from harness.nemesis import Nemesis
from harness.nemesis.faults import check_params
from harness.stack.stack import Stack

# how long a drill waits, after its last step, for writes and reads to succeed again
RECOVERY_WAIT_S = 120.0

def gameday_dir(stack: Stack) -> Path:
    path = stack.state_dir / "gameday"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _active_path(stack: Stack) -> Path:
    return gameday_dir(stack) / "active.json"


def load_active(stack: Stack) -> dict[str, dict[str, Any]]:
    path = _active_path(stack)
    return json.loads(path.read_text()) if path.exists() else {}


def _save_active(stack: Stack, active: dict[str, dict[str, Any]]) -> None:
    _active_path(stack).write_text(json.dumps(active, indent=2))


def _history(stack: Stack) -> HistoryWriter:
    """The game-day history of this stack; each CLI call appends a new part file."""
    parts = sorted(gameday_dir(stack).glob("history-*.jsonl"))
    offset = sum(len(read_history(p)) for p in parts)
    start = float((gameday_dir(stack) / "run_start").read_text()) if (
        gameday_dir(stack) / "run_start").exists() else None
    if start is None:
        start = time.monotonic()
        (gameday_dir(stack) / "run_start").write_text(repr(start))
    return HistoryWriter(gameday_dir(stack) / f"history-{len(parts):04d}.jsonl", run_start=start,
                         index_offset=offset)


def parse_params(pairs: list[str], fault: str | None = None) -> dict[str, str]:
    """`--param K=V` pairs; with the fault's name, checked against what it takes."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PgchaosError(f"--param takes key=value, not {pair!r}")
        params[key] = value
    if fault is not None:
        check_params(Nemesis.fault(fault), params)
    return params


def inject(stack: Stack, fault: str, target: str, params: dict[str, str]) -> dict[str, Any]:
    """Inject one fault and remember it so that a later `pgchaos heal` can undo it.
    The look at its effect is waited for (and recorded) before this returns:
    `record["effect"]` says what was seen."""
    check_params(Nemesis.fault(fault), params)  # an unknown name fails before anything is written
    with _history(stack) as history:
        nem = Nemesis(stack, history)
        active = nem.inject(fault, target, **params)
        effect = nem.observed(active)
    record = {"id": active.id, "fault": fault, "target": active.target, "role": target,
              "params": active.params, "time": active.time, "effect": effect}
    faults = load_active(stack)
    faults[str(active.id)] = record
    _save_active(stack, faults)
    return record




def _repair(nem: Nemesis, record: dict[str, Any]) -> None:
    """Undo one recorded fault from its description: its catalogue entry's repair (the
    engine's faults are in the catalogue too), the same one an in-process heal runs."""
    nem.repair(record["fault"], record["target"], record.get("params") or {})


def heal(stack: Stack, fault_id: str | None) -> list[dict[str, Any]]:
    """Heal one recorded fault, or everything (`fault_id` None: Jepsen's final heal)."""
    faults = load_active(stack)
    if fault_id is not None and fault_id not in faults:
        valid = ", ".join(f"{k} ({v['fault']} {v['target']})" for k, v in faults.items()) or "none"
        raise PgchaosError(f"no active fault {fault_id!r}; active: {valid}")
    chosen = [faults[fault_id]] if fault_id is not None else list(faults.values())
    with _history(stack) as history:
        nem = Nemesis(stack, history)
        for record in chosen:
            _repair(nem, record)
            history.append("nemesis", "info", "heal", {"target": record["target"], "fault": record["id"]})
            faults.pop(str(record["id"]), None)
        if fault_id is None:
            nem.heal_all()
    _save_active(stack, faults)
    return chosen


# -- drills -------------------------------------------------------------------------------


@dataclass
class DrillStep:
    """One runbook step: what the guide says, the command shown, what running it does."""

    title: str
    command: str
    run: Callable[[Stack, str], str] | None = None  # (stack, failed node); None: by hand


@dataclass
class DrillPlan:
    """A drill as it runs on one stack: the disaster, the steps, what judges the runbook
    besides RTO/RPO, and what puts the stack back as it was found (run whatever happened)."""

    inject: Callable[[], Any]  # injects the disaster, returns the active fault
    steps: list[DrillStep]
    check: Callable[[list[Any]], dict[str, Any]] | None = None
    cleanup: Callable[[], None] | None = None
    note: str = ""


def _patronictl(stack: Stack, failed: str = "") -> str:
    return stack.patronictl_list()


def _promoted(stack: Stack, failed: str) -> str:
    """Wait (up to 60 s) for Patroni to promote another member, then show the cluster."""
    from harness.stack.topology import discover

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and discover(stack).leader in (None, failed):
        time.sleep(0.5)
    return stack.patronictl_list()


def _docker_ps(stack: Stack, failed: str = "") -> str:
    return "\n".join(f"{name:20} {c.status}" for name, c in sorted(stack.containers().items()))


def _health(stack: Stack, failed: str = "") -> str:
    """The guide's `curl …:8008/health`: each member's Patroni REST API, plus the router's
    health endpoint when the manifest names one (never a PostgreSQL port)."""
    import requests

    lines = []
    for member in stack.manifest.coordinator.members:
        try:
            url = f"{stack.patroni_url(member)}/health"
            lines.append(f"GET {url} ({member}) -> {requests.get(url, timeout=3).status_code}")
        except (requests.RequestException, PgchaosError) as exc:
            lines.append(f"{member}: Patroni REST API does not answer ({str(exc).splitlines()[0][:120]})")
    router = stack.manifest.router
    if router.health_port is not None:
        url = f"http://{stack.endpoint(router.service, router.health_port)}/health"
        lines.append(f"GET {url} (router) -> {requests.get(url, timeout=3).status_code}")
    else:
        lines.append("router health: skipped, the manifest names no health endpoint ([router] health_port)")
    return "\n".join(lines)


def _restart_stopped(stack: Stack, failed: str = "") -> str:
    started = []
    for name, container in stack.containers().items():
        container.reload()
        if container.status != "running":
            stack.deployment.start(name)
            started.append(name)
    return f"started: {', '.join(started) or 'nothing was down'}"


def _active_workers(stack: Stack, failed: str = "") -> str:
    from harness.stack.topology import discover

    return "\n".join(f"{w}: {'up' if up else 'DOWN'}" for w, up in discover(stack).workers.items())


DRILLS: dict[str, dict[str, Any]] = {
    "coordinator-failure": {
        "guide": "Disaster Recovery, Scenario 1: Single Coordinator Failure",
        "fault": ("kill", "primary"),
        "target": "coordinator-failure",
        "alerts": ("PatroniMemberDown", "PatroniLeaderMissing"),  # what pages the on-call
        "steps": [
            DrillStep("Detection", "docker ps | grep coordinator", _docker_ps),
            DrillStep("Patroni promotes a replica: verify the new leader", "patronictl list", _promoted),
            DrillStep("Replace the failed coordinator",
                      "docker compose start <failed coordinator>", _restart_stopped),
            DrillStep("Verify cluster health", "patronictl list && curl http://localhost:8008/health",
                      lambda s, failed: _patronictl(s) + "\n" + _health(s)),
        ],
    },
    "worker-failure": {
        "guide": "Disaster Recovery, Scenario 2: Worker Node Failure",
        "fault": ("kill", "worker-1"),
        "target": "worker-failure",
        "alerts": ("WorkerUnreachable",),
        "steps": [  # a stack without Citus (the reference profile's postgres_fdw workers)
            DrillStep("Detection (no Citus here: worker probes stand in for citus_get_active_worker_nodes)",
                      "SELECT * FROM citus_get_active_worker_nodes();  -- here: a query to each worker",
                      _active_workers),
            DrillStep("Remove the failed worker: not run, this stack has no Citus "
                      "(the guide's steps run for real on `pgchaos up --profile citus`)",
                      "SELECT citus_remove_node('worker-1', 5432);"),
            DrillStep("Bring the worker back (stands in for the replacement and the rebalance)",
                      "docker compose start worker-1", _restart_stopped),
            DrillStep("Verify", "SELECT count(*) FROM users;  -- every shard answers", _active_workers),
        ],
        "citus": lambda run: _citus_worker_failure(run),
    },
}


def _citus_worker_failure(run: Any) -> DrillPlan:
    """DR scenario 2 on a Citus stack: the guide's steps as written, then the working procedure,
    the spare group of the manifest as the replacement (harness.citus_runbooks, the same
    steps as the scenario test_citus_worker_replacement)."""
    from harness.citus_runbooks import GUIDE_TABLES, WorkerReplacement
    from harness.stack import citus
    from harness.targets import load_targets

    repl = WorkerReplacement(run)
    row = load_targets(None).row("worker-failure")
    dead = citus.primaries(repl.dsn)[repl.lost_id]
    spare = repl.spare.group
    host, port = dead.split(":")

    def step(method: Callable[[], str]) -> Callable[[Stack, str], str]:
        return lambda _stack, _failed: method()

    def check(ops: list[Any]) -> dict[str, Any]:
        bad = repl.problems(row.rto_s, row.row)
        findings = repl.book.failed_guide_steps()
        run.figures["guide_steps_failed"] = findings
        return {"valid": not bad, "reason": "; ".join(bad), "runbook_s": repl.runbook_s,
                "guide_steps_failed": findings}

    rebalance = "\n    $ ".join(f"SELECT rebalance_table_shards('{t}');" for t in GUIDE_TABLES)
    steps = [
        DrillStep("Detection (guide)", "SELECT * FROM citus_get_active_worker_nodes();", step(repl.detect)),
        DrillStep("Remove the failed worker (guide)", f"SELECT citus_remove_node('{host}', {port});",
                  step(repl.remove_failed)),
        DrillStep(f"Patroni fails {repl.lost.name} over on its own (not in the guide): wait, detect again",
                  "patronictl list; SELECT * FROM citus_get_active_worker_nodes();", step(repl.await_failover)),
        DrillStep(f"Add the replacement worker (guide): the spare group {spare.name}",
                  f"docker compose --profile {spare.compose_profile} up -d {' '.join(spare.members)}"
                  "\n    $ SELECT citus_add_node('<its primary>', <port>);", step(repl.add_replacement)),
        DrillStep("Rebalance shards (guide)", rebalance, step(repl.rebalance)),
        DrillStep("Monitor rebalancing (guide)", "SELECT * FROM citus_rebalance_status();", step(repl.monitor)),
        DrillStep(f"Working procedure: drain the failed worker group {repl.lost_id}",
                  "SELECT citus_drain_node('<survivor>', <port>); CALL citus_cleanup_orphaned_resources();",
                  step(repl.drain_failed)),
        DrillStep(f"Working procedure: retire group {repl.lost_id} and remove its nodes",
                  "docker kill <its members>; SELECT citus_disable_node(...); SELECT citus_remove_node(...);",
                  step(repl.retire_failed)),
        DrillStep("Verify: every key writable again", "-- the probe's writes and reads succeed",
                  step(repl.verify)),
    ]
    return DrillPlan(inject=repl.inject, steps=steps, check=check, cleanup=repl.restore,
                     note=f"Citus stack: {repl.lost.name}'s primary ({dead}) killed for good; "
                          f"replacement: spare group {spare.name} (Citus group {spare.citus_group})")


def drill_plan(stack: Stack, name: str, run: Any) -> DrillPlan:
    """The drill as it runs on this stack: its Citus steps on a Citus stack, the generic ones elsewhere."""
    drill = DRILLS[name]
    if "citus" in drill and "citus" in stack.manifest.capabilities():
        return drill["citus"](run)
    fault, role = drill["fault"]
    return DrillPlan(inject=lambda: run.nemesis.inject(fault, role), steps=drill["steps"])


def _steps_ran(timings: list[dict[str, Any]]) -> Callable[[list[Any]], dict[str, Any]]:
    def check(ops: list[Any]) -> dict[str, Any]:
        failed = [f"{t['step']}: {t['error']}" for t in timings if t.get("error")]
        return {"valid": not failed, "reason": "; ".join(f"step raised: {f}" for f in failed)}
    return check


class AlertPages:
    """The alert notifications of a drill's run, shown once each, as the on-call got them."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.shown = 0

    def show(self, say: Callable[[str], None]) -> None:
        watcher = self.run.alerts
        if watcher is None:
            return
        with contextlib.suppress(PgchaosError):
            watcher.poll()
        for a in list(watcher.seen)[self.shown:]:
            t = a.received - self.run.wall_zero
            mark = "PAGE" if a.status == "firing" else "resolved"
            say(f"    [{mark} t={t:.1f} s] {a.name} ({a.severity or 'no severity'}): {a.summary}")
            self.shown += 1


def run_drill(stack: Stack, name: str, decide: Callable[[int, DrillStep], str],
              say: Callable[[str], None], reports_dir: Path) -> dict[str, Any]:
    """Inject the drill's disaster under a probe, walk the runbook, judge the recovery.

    `decide(i, step)` answers "run" (the harness runs the step), "manual"
    (the SRE did it; returns once they confirm) or "skip".
    """
    from harness.scenario import RunOptions, ScenarioError, ScenarioRun

    if name not in DRILLS:
        raise PgchaosError(f"unknown drill {name!r}; valid: {', '.join(DRILLS)}")
    drill = DRILLS[name]
    if "citus" in drill and "citus" in stack.manifest.capabilities():
        stack.manifest.spare_group()  # no spare group declared: one line, nothing injected
    options = RunOptions(reports_dir=reports_dir, load_users=0)
    timings: list[dict[str, Any]] = []
    with ScenarioRun(stack, f"drill-{name}", drill["target"], options, load=False) as run:
        plan = drill_plan(stack, name, run)
        say(f"== {drill['guide']}" + (f"\n   {plan.note}" if plan.note else ""))
        if drill.get("alerts"):
            run.expect_alerts(*drill["alerts"])
        active = plan.inject()
        say(f"disaster injected: {active.fault} {active.target} (t={active.time:.1f} s)")
        pages = AlertPages(run)
        try:
            for i, step in enumerate(plan.steps, 1):
                pages.show(say)  # what the on-call received before this step
                say(f"\n[{i}/{len(plan.steps)}] {step.title}\n    $ {step.command}")
                started = time.monotonic()
                choice = decide(i, step) if step.run is not None else decide(i, DrillStep(
                    step.title, step.command, None))
                entry: dict[str, Any] = {"step": step.title, "choice": choice}
                if choice == "run" and step.run is not None:
                    try:
                        output = step.run(stack, active.target)
                    except Exception as exc:  # noqa: BLE001 - shown and judged, the drill goes on
                        entry["error"] = f"{type(exc).__name__}: {exc}"[:500]
                        output = f"ERROR {entry['error']}"
                    say("    " + output.replace("\n", "\n    "))
                run.phase(f"step {i}: {step.title}", choice=choice)
                entry["seconds"] = round(time.monotonic() - started, 1)
                timings.append(entry)
                say(f"    ({choice}, {entry['seconds']} s)")
            pages.show(say)
            say("\n== waiting for writes and reads to succeed again (bounded; judged like a scenario)")
            try:
                took = run.wait_for_recovery(timeout_s=RECOVERY_WAIT_S)
                say(f"    recovered ({took:.1f} s after the last step)")
            except ScenarioError as exc:
                say(f"    not recovered: {exc}")
        finally:
            run.figures["steps"] = timings
            if plan.cleanup is not None:
                say("\n== putting the stack back as it was found (not timed)")
                plan.cleanup()
        run.add_check("drill-steps", _steps_ran(timings))
        if plan.check is not None:
            run.add_check("runbook", plan.check)
    return run.verdict or {}
