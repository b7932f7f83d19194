"""Citus on Swarm: the guide's "How do I add a new worker node?" as written, under load —
`docker service scale postgres-mesh_worker=5`, `SELECT citus_add_node('worker-5', 5432)`,
`SELECT rebalance_table_shards()` — then back down to the stack file's 4 workers,
draining the new worker first (the guide has no scale-down; its working procedure
here: `citus_drain_node`, `patronictl pause` of the group, `docker service scale
postgres-mesh_worker=4`, the group taken out of pg_dist_node and its Patroni keys and
data folder removed).

The new task (slot 5) is the worker-5 member of Citus group 5; Patroni registers
its primary in pg_dist_node itself, by the task's overlay address. When Citus refuses
the guide's `citus_add_node` (here: Patroni registers every group with an explicit
group id, so Citus's own group-id sequence hands out 1 again), the finding is recorded
with Citus's error and the working procedure (the address Patroni registered) runs as
a labelled step; when it takes the name, the second registration of the same
PostgreSQL is recorded and undone. The
scale is the fault: RTO runs from the command to the last write disruption the
scale-out and the rebalance cause; no acknowledged write may be lost (per worker
group, the new one included in the placements) and the new group must hold shards.
Target citus-scale-out (ours: 120 s / RPO 0)."""

import contextlib
import shutil
import time

import pytest
from citus_support import GroupWriters, per_group
from citus_swarm_steps import docker_command, guide_fault, replica_check, running_tasks, swarm_of

from conftest import assert_verdict
from harness.citus_runbooks import Runbook, group_rows, remove_group, sql_until_ok, wait_for
from harness.stack import citus

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.citus,
    pytest.mark.requires("swarm", "citus", "worker-groups>=2", "spare-groups"),
    pytest.mark.target("citus-scale-out"),
]


def test_citus_swarm_scale_out(scenario_run):
    with scenario_run() as run:
        book = Runbook(run)
        run.figures["steps"] = book.steps
        dep = swarm_of(run)
        dsn = book.dsn
        spare = run.stack.manifest.spare_group()
        new_member, new_group = spare.members[0], spare.citus_group
        service, slot = dep.task_of(new_member)
        groups = [g.citus_group for g in run.stack.manifest.worker_groups]
        run.figures["placements_before"] = citus.placements_per_group(dsn)
        data = run.stack.data_mount(new_member)
        scaled = False
        writers = GroupWriters(run, groups).start()
        try:
            replica_check(run, book, "0. docker stack services (daily check, before)")
            with book.step(f"0a. the data folder of the new task's member ({data}; a host's disk elsewhere)"):
                data.mkdir(parents=True, exist_ok=True)

            def slot_running() -> tuple[bool, str]:
                tasks = running_tasks(dep, service)
                return slot in tasks, f"{dep.swarm_service(service)} running slots {sorted(tasks)}"

            guide_fault(run, book, f"1. docker service scale postgres-mesh_{service}={slot}",
                        f"docker service scale postgres-mesh_{service}={slot}", slot_running)
            scaled = True
            registered, _ = wait_for(f"Patroni registers group {new_group}",
                                     lambda: new_group in citus.primaries(dsn), timeout_s=150, interval_s=1)
            book.note(f"1a. Patroni registered group {new_group} itself", observed=True, ok=registered,
                      rows=group_rows(dsn, new_group))
            register_as_written(book, new_member, new_group)
            started = time.monotonic()
            book.sql("3. rebalance_table_shards()", "SELECT rebalance_table_shards()", timeout_s=400)
            run.figures["rebalance_s"] = round(time.monotonic() - started, 1)
            run.figures["placements_after"] = citus.placements_per_group(dsn)
            run.wait_for_recovery(timeout_s=120)
            replica_check(run, book, "4. docker stack services (daily check, scaled)")
            end = run.now()
        finally:
            run.phase("restore-topology")
            try:
                if scaled:
                    scale_back(run, book, dep, service, new_group, data)
            finally:
                writers.stop()
        run.figures["placements_final"] = citus.placements_per_group(dsn)
        run.add_check("citus-scale-out", lambda ops: _judge(run, ops, groups, new_group, end))
    assert_verdict(run.verdict)


def register_as_written(book, member, group) -> None:
    """The guide's `citus_add_node('worker-N', 5432)`. Patroni has registered the group by its
    task's address already; when the name resolves too (Swarm's DNS knows a task's hostname
    on the overlay), Citus takes it as another node — the same PostgreSQL in a second group —
    which is a finding, undone (it holds no shard yet) before the rebalance. When the
    command fails, the working procedure registers the address Patroni gave."""
    dsn = book.dsn
    step = book.sql(f"2. citus_add_node('{member}', 5432)", "SELECT citus_add_node(%s, 5432)", (member,))
    address = citus.primaries(dsn).get(group)
    if not step["ok"]:
        if address is None:
            raise AssertionError(f"group {group} never appeared in pg_dist_node")
        host, port = address.split(":")
        book.sql(f"2w. citus_add_node of the address Patroni registered ({address})",
                 "SELECT citus_add_node(%s, %s)", (host, int(port)), guide=False)
        return
    twin = [n for n in citus.nodes(dsn) if n["nodename"] == member and n["groupid"] != group]
    if twin and address is not None:
        other = twin[0]["groupid"]
        book.note(f"2a. '{member}' is now in pg_dist_node twice: group {other} by name and group {group} by "
                  f"the address Patroni registered ({address}) — one PostgreSQL, two groups", observed=True,
                  ok=False, error=f"duplicate registration of {member} (groups {other} and {group})",
                  rows=[n for n in citus.nodes(dsn) if n["groupid"] in (group, other)])
        book.sql(f"2w. citus_remove_node('{member}', 5432): keep the group Patroni manages",
                 "SELECT citus_remove_node(%s, 5432)", (member,), guide=False)


def scale_back(run, book, dep, service, group, data) -> None:
    """Drain the new group, put it in Patroni's maintenance mode, scale the service back to
    the stack file's replicas (which slot Swarm removes is recorded: a worker that still
    holds shards must not be the one), take the group out of pg_dist_node once Patroni's
    leader key of it has expired, and remove its Patroni keys and data folder.

    Why the pause: a worker primary's graceful stop (what the scale-down does to its task)
    makes the coordinator's Patroni rename its pg_dist_node row to '<address>-demoted'
    (citus_update_node) in a transaction it keeps open, holding pg_dist_node's
    ExclusiveLock, until the group has a new primary — which a removed group never gets,
    so `citus_disable_node` / `citus_remove_node` wait behind it for good (seen when
    scaling down with `docker service scale` alone). A paused Patroni exits without
    stopping PostgreSQL or telling the coordinator: the task ends like a lost host.
    (Killing the task first races Swarm's restart of it: once the scale-down found the
    restarted task and removed nothing.)"""
    dsn = book.dsn
    member = dep.slotted()[service].member(max(running_tasks(dep, service)))
    primary = citus.primaries(dsn).get(group)
    if primary:
        host, port = primary.split(":")
        sql_until_ok(book, f"R1. citus_drain_node of group {group} ({primary})", "SELECT citus_drain_node(%s, %s)",
                     (host, int(port)))
    left = citus.placements_per_group(dsn).get(group, 0)
    if left:
        raise AssertionError(f"group {group} still holds {left} shard placements after the drain: "
                             "not scaling down (the new worker is left running)")
    manifest = run.stack.manifest
    config = next(g for g in [*manifest.groups, *manifest.spare_groups] if member in g.members).patroni_config
    code, out = run.stack.exec(member, ["patronictl", "-c", config, "pause", "--group", str(group), "--wait"],
                               user="postgres", timeout=60)
    book.note(f"R2. patronictl pause --group {group} (on {member})", ok=code == 0,
              error=None if code == 0 else out.strip()[-300:], output=out.strip().splitlines()[-2:])
    before = running_tasks(dep, service)
    want = dep.desired_in_stack_file(service)
    docker_command(run, book, f"R3. docker service scale postgres-mesh_{service}={want}",
                   f"docker service scale postgres-mesh_{service}={want}", guide=False)
    removed = sorted(set(before) - desired_slots(dep, service))
    run.figures["scale_down_removed_slots"] = removed
    book.note(f"R3a. Swarm removed slot(s) {removed}", observed=True, ok=removed == [max(before)],
              **({} if removed == [max(before)] else
                 {"error": f"Swarm removed slot(s) {removed}, not the drained slot {max(before)}"}))
    gone, _ = wait_for(f"no leader key of group {group}",
                       lambda: _leader_key(run, group) is None, timeout_s=60)
    book.note(f"R4. group {group}'s Patroni leader key expired", observed=True, ok=gone)
    if not remove_group(book, group):
        raise AssertionError(f"group {group} is still in pg_dist_node: {group_rows(dsn, group)}")
    with contextlib.suppress(Exception):
        run.stack.exec(run.stack.manifest.dcs.members[0],
                       ["etcdctl", "--endpoints=http://localhost:2379", "del", "--prefix",
                        f"/service/{run.stack.manifest.coordinator.scope}/{group}/"], timeout=20)
    shutil.rmtree(data, ignore_errors=True)


def desired_slots(dep, service) -> set[int]:
    """The slots Swarm keeps for a service (tasks desired running, running yet or not)."""
    tasks = dep.docker.api.tasks(filters={"service": dep.swarm_service(service), "desired-state": "running"})
    return {int(t.get("Slot") or 0) for t in tasks}


def _leader_key(run, group):
    from harness.citus_runbooks import etcd_leader

    return etcd_leader(run.stack, group)


def _judge(run, ops, groups, new_group, end):
    figures = per_group(ops, groups, 0.0, end)
    run.figures["per_group"] = figures
    bad = [f"group {g}: {f['lost']} acknowledged writes lost" for g, f in figures.items() if f["lost"]]
    if not run.figures.get("placements_after", {}).get(new_group):
        bad.append(f"the new group {new_group} holds no shard after rebalance_table_shards()")
    return {"valid": not bad, "reason": "; ".join(bad) or "no write lost; the new group took shards"}
