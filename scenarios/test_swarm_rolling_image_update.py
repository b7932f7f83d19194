"""Swarm: the guide's monthly "Rolling update (zero downtime)" —
`docker service update --image ... postgres-mesh_<service>` — of the
coordinator and router services under load, to a second local tag of the same
image (so only the rollout is measured). The coordinators roll the way Swarm
rolls a 3-task service (one task at a time, stop-first, slot order), then the
router (HAProxy, one task). Target row zero-downtime-update (ours: the guide's
claim, at probe resolution)."""

import pytest
from swarm_steps import record_dropped, timeline_switches, update_one_at_a_time

from conftest import assert_verdict

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("swarm", "coordinator-members>=3"),
    pytest.mark.target("zero-downtime-update"),
]


def test_swarm_rolling_image_update(scenario_run):
    with scenario_run() as run:
        switches = timeline_switches(run)
        members = sorted(run.stack.manifest.coordinator.members)
        update_one_at_a_time(run, "service-image-update", [*members, run.stack.manifest.router.service])
        run.wait_for_recovery()
        after = timeline_switches(run)
        run.figures["promotions"] = None if None in (switches, after) else after - switches
        record_dropped(run)
    assert_verdict(run.verdict)
