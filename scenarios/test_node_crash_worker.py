"""Several hosts, Citus: the node holding a Citus worker crashes (`docker kill` of the
whole host), a node with neither the coordinator leader nor the single-instance parts.
Each worker task is a Citus group with no standby (the guide's stack), so that group's
shards are down until Swarm runs its task again. The worker service is not pinned, so
Swarm reschedules the task on another host once it marks the node down. The task
comes back on its member's data folder, and Patroni re-points the member's Toxiproxy
link at the new address. The coordinator replica on that host stays pending until the
node rejoins. Row worker-failure (the guide's single worker failure: 5 min / RPO 0),
judged per worker group: the hit groups' writes back within it, no group losing an
acknowledged write. Swarm's detection is a phase; where each worker came back, how long
until every pooled coordinator backend read its shards again, and the node's rejoin are
figures and a runbook step."""

import pytest
from citus_support import GroupWriters, per_group
from node_steps import host_return, record_node_figures, worker_host, workers_on
from shards import reached_from_every_backend

from conftest import assert_verdict
from harness.runbook import Runbook
from harness.targets import load_targets

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.citus,
    pytest.mark.requires("swarm-nodes", "node-control", "citus", "worker-groups>=2"),
    pytest.mark.target("worker-failure"),
]

ROW = "worker-failure"
RESCHEDULE_TIMEOUT_S = 300.0  # the row's RTO: past it the verdict fails anyway


def test_node_crash_worker(scenario_run, pgchaos_stack):
    worker, node = worker_host(pgchaos_stack)
    workers = workers_on(pgchaos_stack, node)
    manifest = pgchaos_stack.manifest
    groups = [g.citus_group for g in manifest.worker_groups]
    hit = sorted(manifest.group_of(w).citus_group for w in workers)
    with scenario_run() as run:
        run.figures.update(target_worker=worker, workers_on_node=workers, hit_groups=hit)
        with GroupWriters(run, groups):
            run.sleep(2)
            fault = run.nemesis.inject("node-crash", worker)
            with Runbook(run).step("Swarm runs the lost workers' tasks on other hosts; every pooled "
                                   "coordinator backend reads their shards"):
                back = run.now()
                for member in workers:
                    reached_from_every_backend(run.stack, member, timeout_s=RESCHEDULE_TIMEOUT_S)
                    run.figures.setdefault("worker_reached_after_s", {})[member] = round(run.now() - back, 1)
            run.figures["workers_now_on"] = {m: run.stack.deployment.node_of(m).name for m in workers}
            run.wait_for_recovery()
            record_node_figures(run, fault)
            host_return(run, fault, [], "the crashed node rejoins: its coordinator member running again")
            run.sleep(2)
        target = load_targets(getattr(run.options, "targets_path", None)).row(ROW)
        crash = f"node-crash@{fault.target}"
        run.add_check("per-group-outage", lambda ops: _judge(run, ops, groups, hit, crash, target.rto_s))
    moved = {m: n for m, n in run.figures["workers_now_on"].items() if n == node}
    assert not moved, f"a lost worker's task still placed on the crashed node {node}: {moved}"
    assert_verdict(run.verdict)


def _judge(run, ops, groups, hit, crash, rto_s):
    """Every group: no acknowledged write lost; the hit groups' writes back within the row's
    RTO of the crash (each group's RTO a figure, the others' too: a stall there is seen)."""
    figures = per_group(ops, groups, 0.0, float("inf"))
    run.figures["per_group"] = figures
    back = {g: f["rto_write_s"].get(crash) for g, f in figures.items()}
    run.figures["write_rto_by_group_s"] = back
    bad = [f"group {g}: {f['lost']} acknowledged writes lost" for g, f in figures.items() if f["lost"]]
    bad += [f"group {g}: writes never came back" for g in hit if back.get(g) is None]
    bad += [f"group {g}: writes back {back[g]} s after the crash (row {ROW}: {rto_s} s)" for g in hit
            if back.get(g) is not None and back[g] > rto_s]
    return {"valid": not bad, "reason": "; ".join(bad) or
            f"groups {hit} (on the crashed host) back after {[back[g] for g in hit]} s (within {rto_s} s); "
            f"the others' RTO {[back[g] for g in groups if g not in hit]} s"}
