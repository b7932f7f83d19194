"""Swarm: the coordinator leader's task killed (DR scenario 1 on `docker stack`):
Swarm replaces the task (restart delay 5 s) and Patroni either fails over or
the replacement, under the same Patroni name, takes its leader key back.
Target row coordinator-failure (10 s / RPO 0); like a hard kill on compose it
is bounded by Patroni's leader key, so the task-kill waiver applies (≤ 25 s)."""

import time

import pytest
from swarm_steps import record_dropped, timeline_switches

from conftest import assert_verdict

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("swarm", "coordinator-members>=2"),
    pytest.mark.target("coordinator-failure"),
]


def test_swarm_leader_task_kill(scenario_run):
    with scenario_run() as run:
        deployment = run.stack.deployment
        switches = timeline_switches(run)
        leader = run.leader()
        old_tasks = [t["ID"] for t in deployment.tasks(leader)]
        t0 = time.monotonic()
        fault = run.nemesis.inject("task-kill", leader)
        task = deployment.wait_task_running(leader, timeout_s=run.options.scaled(90),
                                            not_task=old_tasks[0] if old_tasks else None)
        run.figures["replacement_running_after_s"] = round(time.monotonic() - t0, 1) if task else None
        run.wait_for_recovery()  # writes and reads succeed again, stably
        run.nemesis.heal(fault)  # Swarm's replacement task runs
        run.figures["old_leader"], run.figures["new_leader"] = leader, run.leader()
        after = timeline_switches(run)
        run.figures["promotions"] = None if None in (switches, after) else after - switches
        record_dropped(run)
    assert_verdict(run.verdict)
