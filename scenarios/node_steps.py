"""Steps shared by the host-failure scenarios (`--engine swarm-nodes`).

On the multi-node test bed the single-instance parts (etcd, HAProxy,
Toxiproxy, monitoring) run on the first node (placement's infra slot), so
losing that node is a DCS and router outage, not a host failure of the
coordinator group. A scenario that crashes "the node holding the coordinator
leader" therefore first moves the leader off that node with a planned
switchover, before its run (and its history) begins."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from shards import reached_from_every_backend

from harness.engines.swarm_nodes.placement import INFRA_SLOT
from harness.errors import PgchaosError
from harness.load.writable_probe import state_of
from harness.runbook import Runbook
from harness.scenario import ScenarioRun
from harness.stack.topology import discover


def leader_off_infra_node(stack: Any, timeout_s: float = 90.0) -> dict[str, Any]:
    """Switch the coordinator leader over to a member on another node when it runs on
    the infra node; what was done (for the figures)."""
    dep = stack.deployment
    group = stack.manifest.coordinator
    leader = discover(stack).leader
    if leader is None:
        raise PgchaosError("no coordinator leader to place")
    node = dep.node_of(leader)
    if node.slot != INFRA_SLOT:
        return {"switchover_first": False, "leader": leader, "node": node.name}
    runner = next(m for m in group.members if m != leader)
    citus = ["--group", str(group.citus_group)] if group.citus_group is not None else []  # Patroni's Citus mode
    rc, out = stack.exec(runner, ["patronictl", "-c", group.patroni_config, "switchover", *citus,
                                  "--leader", leader, "--force"], user="postgres", timeout=60)
    if rc != 0 or "Successfully" not in out:
        raise PgchaosError(f"switchover off the infra node failed: {' '.join(out.strip().splitlines()[-2:])}")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = discover(stack).leader
        if now not in (None, leader):
            return {"switchover_first": True, "leader": now, "node": dep.node_of(now).name, "was": leader}
        time.sleep(1.0)
    raise PgchaosError(f"no new coordinator leader within {timeout_s:.0f} s of the switchover")


def replica_off_infra_node(stack: Any) -> str:
    """A coordinator replica whose node is not the infra node."""
    dep = stack.deployment
    topo = discover(stack)
    for member in topo.replicas:
        if dep.node_of(member.name).slot != INFRA_SLOT:
            return member.name
    raise PgchaosError("no coordinator replica runs outside the infra node")


def worker_host(stack: Any) -> tuple[str, str]:
    """A worker member and its node, the node holding neither the single-instance parts
    (the infra node) nor the coordinator leader: losing it is a worker host's failure (the
    coordinator replica it also holds goes with it, as on a real host)."""
    dep = stack.deployment
    leader = discover(stack).leader
    if leader is None:
        raise PgchaosError("no coordinator leader")
    leader_node = dep.node_of(leader).name
    for group in stack.manifest.worker_groups:
        for member in group.members:
            node = dep.node_of(member)
            if node.slot != INFRA_SLOT and node.name != leader_node:
                return member, node.name
    raise PgchaosError(f"no worker runs on a node without the infra parts and the coordinator leader "
                       f"(leader {leader} on {leader_node})")


def workers_on(stack: Any, node: str) -> list[str]:
    """The worker members whose task runs on `node` (a host crash takes them down with it)."""
    where = stack.deployment.placement()
    return sorted(m for g in stack.manifest.worker_groups for m in g.members if where.get(m) == node)


def rejoin_row(workers: list[str]) -> str | None:
    """The targets row that judges a crashed host's return: worker-failure when it held a
    worker (whose shards stay unavailable until it is back), else the scenario's own."""
    return "worker-failure" if workers else None


def states_on_every_node(stack: Any) -> Callable[[str, str], list[str]]:
    """For the split-brain probe: a member's state in every container that runs it, asked of
    each node's own engine (a node cut off from the managers still runs its tasks)."""
    dep = stack.deployment
    return lambda member, script: [state_of(rc, out) for _, rc, out in
                                   dep.exec_everywhere(member, ["sh", "-c", script])]


def host_return(run: ScenarioRun, fault: Any, workers: list[str], label: str) -> None:
    """The hit host's return as a runbook step (judged by worker-failure when it held a
    worker): the fault healed, writes and reads back, and every pooled coordinator backend
    reaching each worker it held again (figure worker_reached_after_s)."""
    with Runbook(run).step(label, row=rejoin_row(workers)):
        run.nemesis.heal(fault)
        run.wait_for_recovery()
        back = run.now()
        for worker in workers:
            reached_from_every_backend(run.stack, worker)
            run.figures.setdefault("worker_reached_after_s", {})[worker] = round(run.now() - back, 1)


def record_node_figures(run: ScenarioRun, fault: Any) -> None:
    """Swarm's own detection (the fault's look: node marked down, or drained) as a figure and a
    phase on the run's timeline."""
    effect = run.nemesis.observed(fault) or {}
    run.figures["node"] = fault.params.get("node")
    run.figures["swarm_detect_s"] = effect.get("after_s") if effect.get("seen") else None
    if effect.get("seen"):
        run.phase("swarm-detected", at=fault.time + float(effect["after_s"]), node=fault.params.get("node"))


def leader_host_lost(scenario_run: Callable[..., Any], stack: Any, fault: str, label: str,
                     new_leader_timeout_s: float) -> ScenarioRun:
    """The coordinator leader's host lost by `fault` (node-crash, node-stop) under load: the
    leader first moved off the infra node, a new leader awaited, recovery, Swarm's detection,
    then the host's return as a runbook step (`label`). The finished run (its verdict)."""
    placed = leader_off_infra_node(stack)
    workers = workers_on(stack, placed["node"])
    with scenario_run() as run:
        run.figures.update(placed, workers_on_node=workers)
        hit = run.nemesis.inject(fault, "primary")
        new_leader = run.wait_for_new_leader(hit.target, timeout_s=new_leader_timeout_s)
        run.figures["old_leader"], run.figures["new_leader"] = hit.target, new_leader
        run.wait_for_recovery()
        record_node_figures(run, hit)
        host_return(run, hit, workers, label)
    return run
