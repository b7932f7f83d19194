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
(pg_dist_transaction is replicated with the coordinator), (4) worker group 1's
primary is killed while its standby lags (its link throttled and a ballast
committed locally on the primary): Patroni promotes the standby, or refuses it
past maximum_lag_on_failover and the group waits for its old primary — what it
did is recorded, and the group's return is judged either way. No
acknowledged transaction may be lost or half-applied, and no prepared
transaction may stay on a worker primary past the row's bound (Citus's
maintenance daemon recovers them from pg_dist_transaction every
citus.recover_2pc_interval). Skipped without the citus capability."""

import json

import pytest
from citus_support import start_bank

from conftest import assert_verdict
from harness.runbook import Runbook, wait_for
from harness.scenario import ScenarioError
from harness.stack import citus
from harness.stack.topology import discover

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.citus,
    pytest.mark.requires("citus", "worker-groups>=2"),
]

CUT_S = 10.0
LAG_RATE_KBPS = 128  # the lagging standby's link
BALLAST_ROWS = 40_000  # about 5 MB of WAL, committed locally on the worker primary


def group_leader(run, group: str) -> str | None:
    leaders = discover(run.stack).group_leaders(group)
    return leaders[0] if len(leaders) == 1 else None


def streaming(run, group: str) -> int:
    return sum(m.state == "streaming" for m in discover(run.stack).groups.get(group, []))


def healthy(dsn: str) -> bool:
    rows = citus.node_health(dsn)
    return bool(rows) and all(r["ok"] is True for r in rows)


@pytest.mark.target("worker-distributed-transactions")
@pytest.mark.requires("worker-standbys")  # a standby to promote
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


def standby_lag(run, group: str, standby: str) -> int:
    members = {m.name: m for m in discover(run.stack).groups.get(group, [])}
    member = members.get(standby)
    return member.lag_bytes or 0 if member is not None else 0


@pytest.mark.target("worker-distributed-transactions")
@pytest.mark.requires("replication-links", "worker-standbys")
def test_citus_transfers_worker_failover_lagging_standby(scenario_run):
    with scenario_run() as run:
        bank = start_bank(run)
        lost = run.stack.manifest.worker_groups[0]
        primary = group_leader(run, lost.name)
        standby = next(m for m in lost.members if m != primary)
        limit = citus_lag_limit(run, primary)
        throttle = run.nemesis.inject("bandwidth", lost.name, rate=LAG_RATE_KBPS, stream="downstream")
        ballast = ("SET synchronous_commit = local; "
                   "CREATE TABLE IF NOT EXISTS pgchaos_lag_ballast (id int, pad text); "
                   "INSERT INTO pgchaos_lag_ballast SELECT g, repeat('x', 100) "
                   f"FROM generate_series(1, {BALLAST_ROWS}) g")
        rc, out = run.stack.exec(primary, ["psql", "-XtAq", "-d", "postgres", "-c", ballast], user="postgres",
                                 timeout=60)
        if rc != 0:
            raise ScenarioError(f"the ballast on {primary} failed: {out.strip()[-300:]}")
        lagging, lag = wait_for(f"{standby} lagging past {limit} bytes",
                                lambda: (v := standby_lag(run, lost.name, standby)) > limit and v, timeout_s=60,
                                interval_s=0.5)
        run.figures["lag_at_kill_bytes"] = lag if lagging else standby_lag(run, lost.name, standby)
        run.figures["maximum_lag_on_failover"] = limit
        fault = run.nemesis.inject("kill", primary)
        promoted, _ = wait_for(f"{standby} promoted", lambda: group_leader(run, lost.name) == standby,
                               timeout_s=run.options.scaled(45), interval_s=0.5)
        run.figures["standby_promoted"] = promoted
        run.nemesis.heal(throttle)
        if promoted:
            run.wait_for_recovery(timeout_s=120)
            run.nemesis.heal(fault)  # the old primary rejoins as the standby
        else:  # Patroni refused the lagging standby: the group waits for its old primary
            with Runbook(run).step(f"{primary} restarted: Patroni did not promote the lagging {standby}"):
                run.nemesis.heal(fault)
                run.wait_until(f"a {lost.name} leader", lambda: group_leader(run, lost.name) is not None,
                               timeout_s=120)
                run.wait_for_recovery(timeout_s=120)
        run.wait_until("transfers committing again", lambda: bank.stable_for(2.0), timeout_s=120,
                       interval_s=0.25)
        run.wait_until(f"{lost.name} streaming again",
                       lambda: streaming(run, lost.name) == len(lost.members) - 1, timeout_s=120)
        run.stack.exec(group_leader(run, lost.name) or primary,
                       ["psql", "-XtAq", "-d", "postgres", "-c", "DROP TABLE IF EXISTS pgchaos_lag_ballast"],
                       user="postgres", timeout=30)
        run.figures.update(killed=primary, standby=standby, bank=bank.figures())
    assert_verdict(run.verdict)


def citus_lag_limit(run, member: str) -> int:
    """Patroni's maximum_lag_on_failover for the member's group (its dynamic configuration)."""
    _, out = run.stack.exec(member, ["curl", "-fs", "http://localhost:8008/config"], timeout=10)
    try:
        return int(json.loads(out).get("maximum_lag_on_failover", 1048576))
    except (ValueError, AttributeError):
        return 1048576
