"""Citus on Swarm: the guide's `docker service update --force postgres-mesh_coordinator`
(DR scenario 1's "replace failed coordinator", and its way to apply a config change),
run as written against the replicated coordinator service (3 tasks: the Patroni
coordinator group), under load, with one writer per worker group. Swarm replaces the
tasks one at a time in its own order, blind to who leads; each replacement is a
member restarting on its data (its task slot's folder). Judged against
coordinator-failure (10 s / RPO 0); the guide's daily replica check runs before and
after; figures: promotions, the tasks replaced, per-group writes."""

import pytest
from citus_support import GroupWriters, per_group
from citus_swarm_steps import guide_fault, replaced, replica_check, running_tasks, swarm_of
from swarm_steps import record_dropped, timeline_switches

from conftest import assert_verdict
from harness.citus_runbooks import Runbook

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.citus,
    pytest.mark.requires("swarm", "citus", "coordinator-members>=3"),
    pytest.mark.target("coordinator-failure"),
]


def test_citus_swarm_coordinator_force_update(scenario_run):
    with scenario_run() as run:
        book = Runbook(run)
        run.figures["steps"] = book.steps
        dep = swarm_of(run)
        groups = [g.citus_group for g in run.stack.manifest.worker_groups]
        switches = timeline_switches(run)
        with GroupWriters(run, groups):
            replica_check(run, book, "1. docker stack services (daily check, before)")
            before = running_tasks(dep, "coordinator")
            command = "docker service update --force postgres-mesh_coordinator"
            guide_fault(run, book, f"2. {command}", command, replaced(dep, "coordinator", before))
            run.wait_for_recovery()
            replica_check(run, book, "3. docker stack services (daily check, after)")
            run.sleep(2)
        after = timeline_switches(run)
        run.figures["promotions"] = None if None in (switches, after) else after - switches
        run.add_check("per-group-writes", lambda ops: _no_loss(run, ops, groups))
        record_dropped(run)
    assert_verdict(run.verdict)


def _no_loss(run, ops, groups):
    figures = per_group(ops, groups, 0.0, float("inf"))
    run.figures["per_group"] = figures
    lost = {g: f["lost"] for g, f in figures.items() if f["lost"]}
    return {"valid": not lost, "reason": f"acknowledged writes lost per worker group: {lost}" if lost else
            "no acknowledged write of any worker group lost"}
