"""Swarm: the guide's troubleshooting step for pool exhaustion — "Increase pool
size … `docker service update --force postgres-mesh_pgbouncer`" — on the
replicated PgBouncer service (2 tasks, updated one at a time, stop-first),
under load: the clients it drops and the time until every client works again.
Target row pooler-restart (ours)."""

import pytest
from swarm_steps import record_dropped, update_one_at_a_time

from conftest import assert_verdict

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("swarm", "pooler"),
    pytest.mark.target("pooler-restart"),
]


def test_swarm_pgbouncer_force_update(scenario_run):
    with scenario_run() as run:
        update_one_at_a_time(run, "service-force-update", [run.stack.manifest.pooler.service])
        run.wait_for_recovery()
        record_dropped(run)
    assert_verdict(run.verdict)
