"""Citus on Swarm: the guide's monthly "Rolling update (zero downtime)" of the workers —
`docker service update --image … postgres-mesh_worker`, then `docker service ps
postgres-mesh_worker` (the guide watches it) — run as written under load, to a second
local tag of the same image (no registry here: the guide's `docker pull` is replaced
by that tag, a labelled working step). Each worker task is a Citus worker group with
no standby, so every replacement takes its group's shards away until the new task
runs on the same data and Patroni registers its new address: per group, the write
outage is a single worker failure, judged against worker-failure (the guide's 5 min /
RPO 0); the guide's "zero downtime" claim is reported next to it (figure
`zero_downtime_claim`), not judged by another row."""

import pytest
from citus_support import GroupWriters, group_ops, per_group
from citus_swarm_steps import docker_command, guide_fault, replaced, replica_check, running_tasks, swarm_of
from swarm_steps import record_dropped

from conftest import assert_verdict
from harness.checkers.availability import availability
from harness.citus_runbooks import Runbook, wait_for
from harness.stack import citus
from harness.targets import load_targets

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.citus,
    pytest.mark.requires("swarm", "citus", "worker-groups>=2"),
    pytest.mark.target("worker-failure"),
]

ROW = "worker-failure"


def test_citus_swarm_worker_rolling_update(scenario_run):
    with scenario_run() as run:
        book = Runbook(run)
        run.figures["steps"] = book.steps
        dep = swarm_of(run)
        groups = [g.citus_group for g in run.stack.manifest.worker_groups]
        addresses_before = citus.primaries(book.dsn)
        with GroupWriters(run, groups):
            replica_check(run, book, "1. docker stack services (daily check, before)")
            image = dep.image_of("worker")
            with book.step("2. the new image: a second local tag of the worker image (no registry here; "
                           "the guide pulls one)"):
                tag = dep.rolled_tag(image)
            before = running_tasks(dep, "worker")
            guide_fault(run, book, "3. docker service update --image IMAGE postgres-mesh_worker",
                        f"docker service update --image {tag} postgres-mesh_worker",
                        replaced(dep, "worker", before), timeout_s=900)
            docker_command(run, book, "4. monitor rollout: docker service ps postgres-mesh_worker",
                           "docker service ps postgres-mesh_worker")
            run.wait_for_recovery(timeout_s=180)
            def all_registered() -> dict[int, str] | None:
                now = citus.primaries(book.dsn)
                return now if all(g in now for g in groups) else None

            registered, now = wait_for("every worker group's primary in pg_dist_node", all_registered,
                                       timeout_s=120)
            book.note("5. Patroni registered each new task's address", observed=True, ok=registered,
                      before=addresses_before, after=now)
            replica_check(run, book, "6. docker stack services (daily check, after)")
            run.sleep(2)
        target = load_targets(getattr(run.options, "targets_path", None)).row(ROW)
        run.add_check("per-group-outage", lambda ops: _judge(run, ops, groups, target.rto_s))
        record_dropped(run)
    assert_verdict(run.verdict)


def _judge(run, ops, groups, rto_s):
    """Per worker group: no acknowledged write lost, its writes back within the row's RTO of
    the command (its task is replaced somewhere in the rollout), and its longest write outage
    (the "zero downtime" claim, at the writer's 0.1 s resolution) as a figure."""
    figures = per_group(ops, groups, 0.0, float("inf"))
    run.figures["per_group"] = figures
    back = {g: max((v for v in f["rto_write_s"].values() if v is not None), default=None)
            for g, f in figures.items()}
    longest = {}
    for g in groups:
        windows = availability(group_ops(ops, g), fs=("write",))["windows"]["write"]
        longest[g] = round(max((w["duration_s"] for w in windows), default=0.0), 2)
    run.figures["longest_write_outage_s"] = longest
    run.figures["zero_downtime_claim"] = {g: "held" if s <= 1 else f"writes failed for {s} s"
                                          for g, s in longest.items()}
    bad = [f"group {g}: {f['lost']} acknowledged writes lost" for g, f in figures.items() if f["lost"]]
    bad += [f"group {g}: writes back {s} s after the command (row {ROW}: {rto_s} s)" for g, s in back.items()
            if s is not None and s > rto_s]
    bad += [f"group {g}: writes never came back" for g, f in figures.items()
            if any(v is None for v in f["rto_write_s"].values())]
    return {"valid": not bad, "reason": "; ".join(bad) or
            f"per group, writes back {back} s after the command (within {rto_s} s); longest outage {longest} s"}
