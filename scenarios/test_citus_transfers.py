"""Citus profile — transactions across worker groups under faults. Bank
transfers between accounts placed on both worker groups (each side's entry
beside its account, so a transfer between groups commits on two shards with
two-phase commit) and paired inserts (an order and its line, two shards)
run through the pooler (the router on a stack without
one) beside the load while (1) worker group 1's primary is
killed, (2) the coordinator <-> worker-1 link is cut for 10 s (Toxiproxy:
connections refused, open ones closed, so commits are cut mid-way), (3) the
coordinator leader itself, the two-phase commit's coordinator, is killed:
what it prepared on the workers must be finished by the new leader's recovery
(pg_dist_transaction is replicated with the coordinator). No
acknowledged transaction may be lost or half-applied, and no prepared
transaction may stay on a worker primary past the row's bound (Citus's
maintenance daemon recovers them from pg_dist_transaction every
citus.recover_2pc_interval). Skipped without the citus capability."""

import pytest
from citus_support import start_bank
from conftest import assert_verdict

from harness.stack import citus
from harness.stack.topology import discover

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.citus,
    pytest.mark.requires("citus", "worker-groups>=2"),
]

CUT_S = 10.0


def group_leader(run, group: str) -> str | None:
    leaders = discover(run.stack).group_leaders(group)
    return leaders[0] if len(leaders) == 1 else None


def streaming(run, group: str) -> int:
    return sum(m.state == "streaming" for m in discover(run.stack).groups.get(group, []))


def healthy(dsn: str) -> bool:
    rows = citus.node_health(dsn)
    return bool(rows) and all(r["ok"] is True for r in rows)


@pytest.mark.target("worker-distributed-transactions")
def test_citus_transfers_worker_failover(scenario_run):
    with scenario_run() as run:
        bank = start_bank(run)
        lost = run.stack.manifest.worker_groups[0]  # the manifest's first worker group
        fault = run.nemesis.inject("kill", f"primary@{lost.name}")
        run.wait_until(f"a {lost.name} leader other than {fault.target}",
                       lambda: group_leader(run, lost.name) not in (None, fault.target), timeout_s=90)
        run.wait_for_recovery(timeout_s=120)
        run.wait_until("transfers committing again", lambda: bank.stable_for(2.0), timeout_s=120,
                       interval_s=0.25)
        run.nemesis.heal(fault)  # the dead member comes back as the group's standby
        run.wait_until(f"the old primary streaming again in {lost.name}",
                       lambda: streaming(run, lost.name) == len(lost.members) - 1, timeout_s=120)
        run.figures["killed"], run.figures["bank"] = fault.target, bank.figures()
    assert_verdict(run.verdict)


@pytest.mark.target("citus-worker-link")
@pytest.mark.requires("worker-links>=1")
def test_citus_transfers_link_cut(scenario_run):
    with scenario_run() as run:
        bank = start_bank(run)
        dsn = run.stack.dsn(via="router", connect_timeout=3)
        fault = run.nemesis.inject("link-down", "worker-1")
        run.sleep(CUT_S)
        run.nemesis.heal(fault)
        run.wait_until("citus_check_cluster_node_health all ok", lambda: healthy(dsn), timeout_s=90)
        run.wait_for_recovery(timeout_s=90)
        run.wait_until("transfers committing again", lambda: bank.stable_for(2.0), timeout_s=90,
                       interval_s=0.25)
        run.figures["link"], run.figures["bank"] = fault.target, bank.figures()
    assert_verdict(run.verdict)


@pytest.mark.target("distributed-transactions")
@pytest.mark.requires("coordinator-members>=2")
def test_citus_transfers_coordinator_kill(scenario_run):
    with scenario_run() as run:
        bank = start_bank(run)
        coordinator = run.stack.manifest.coordinator
        fault = run.nemesis.inject("kill", "primary")
        new_leader = run.wait_for_new_leader(fault.target, timeout_s=90)
        run.wait_for_recovery(timeout_s=120)
        run.wait_until("transfers committing again", lambda: bank.stable_for(2.0), timeout_s=120,
                       interval_s=0.25)
        run.nemesis.heal(fault)  # the old leader rejoins as a standby
        run.wait_until(f"{fault.target} streaming again",
                       lambda: streaming(run, coordinator.name) == len(coordinator.members) - 1, timeout_s=120)
        run.figures.update(killed=fault.target, new_leader=new_leader, bank=bank.figures())
    assert_verdict(run.verdict)
