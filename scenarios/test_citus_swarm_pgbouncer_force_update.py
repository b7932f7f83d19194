"""Citus on Swarm: the guide's troubleshooting step for pool exhaustion — "Increase
pool size … `docker service update --force postgres-mesh_pgbouncer`" — run as written
against the replicated PgBouncer service under load: Swarm replaces its tasks one at
a time; the clients it drops and the time until every client works again. Target row
pooler-restart (ours: 10 s / RPO 0)."""

import pytest
from citus_swarm_steps import guide_fault, replaced, replica_check, running_tasks, swarm_of
from swarm_steps import record_dropped

from conftest import assert_verdict
from harness.citus_runbooks import Runbook

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.citus,
    pytest.mark.requires("swarm", "citus", "pooler"),
    pytest.mark.target("pooler-restart"),
]


def test_citus_swarm_pgbouncer_force_update(scenario_run):
    with scenario_run() as run:
        book = Runbook(run)
        run.figures["steps"] = book.steps
        dep = swarm_of(run)
        pooler = run.stack.manifest.pooler.service
        before = running_tasks(dep, pooler)
        guide_fault(run, book, "1. docker service update --force postgres-mesh_pgbouncer",
                    f"docker service update --force postgres-mesh_{pooler}", replaced(dep, pooler, before))
        run.wait_for_recovery()
        replica_check(run, book, "2. docker stack services (daily check, after)")
        record_dropped(run)
    assert_verdict(run.verdict)
