"""Citus profile — worker-group primary loss (the guide's DR scenario 2,
"worker node failure", under Patroni's Citus mode): `docker kill` of the
primary of worker group 1 under load. Patroni promotes the group's
synchronous standby and rewrites the group's row in pg_dist_node itself
(recorded before and after); writes to worker group 2's shards never stop;
RTO and RPO 0 are measured per group by one writer per group (keys placed by
get_shard_id_for_distribution_column + pg_dist_placement). Target
worker-failure (300 s / RPO 0)."""

import pytest
from citus_support import GroupWriters, per_group

from conftest import assert_verdict
from harness.citus_runbooks import wait_for
from harness.history import Op
from harness.stack import citus
from harness.stack.topology import discover

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.citus,
    pytest.mark.requires("citus", "worker-groups>=2", "worker-standbys"),  # a standby to promote
    pytest.mark.target("worker-failure"),
    pytest.mark.alerts("PatroniMemberDown", "PatroniLeaderMissing"),  # no group leader until the failover
]

GRACE_S = 1.0  # connections already open when the primary died fail within this


def group_leader(run, group: str) -> str | None:
    leaders = discover(run.stack).group_leaders(group)
    return leaders[0] if len(leaders) == 1 else None


def streaming(run, group: str) -> int:
    return sum(m.state == "streaming" for m in discover(run.stack).groups.get(group, []))


def test_citus_worker_failover(scenario_run):
    with scenario_run() as run:
        lost_group, kept_group = run.stack.manifest.worker_groups[:2]  # the manifest's first two worker groups
        LOST, KEPT, name = lost_group.citus_group, kept_group.citus_group, lost_group.name  # noqa: N806
        dsn = run.stack.dsn(via="router")
        before = citus.metadata(dsn)
        primaries_before = citus.primaries(dsn)
        with GroupWriters(run, [LOST, KEPT]):
            run.sleep(3)
            fault = run.nemesis.inject("kill", f"primary@{name}")
            run.wait_until(f"a {name} leader other than {fault.target}",
                           lambda: group_leader(run, name) not in (None, fault.target), timeout_s=90)
            new_primary = group_leader(run, name)
            moved, primaries = wait_for(
                "pg_dist_node follows the failover",
                lambda: (p := citus.primaries(dsn)).get(LOST) != primaries_before.get(LOST) and p,
                timeout_s=90, interval_s=0.5)
            run.phase("observed", what=f"pg_dist_node primary of group {LOST} changed", held=moved)
            run.wait_for_recovery(timeout_s=120)
            run.sleep(3)
            after = citus.metadata(dsn)
            run.nemesis.heal(fault)  # the dead member comes back as the group's standby
            run.wait_until(f"the old primary streaming again in {name}",
                           lambda: streaming(run, name) == len(lost_group.members) - 1, timeout_s=120)
            run.sleep(2)
        run.figures["killed"] = fault.target
        run.figures["new_primary"] = new_primary
        run.figures["pg_dist_node_primary"] = {"before": primaries_before, "after": primaries,
                                               "changed": moved}
        run.figures["pg_dist_node"] = {"before": before["pg_dist_node"], "after": after["pg_dist_node"]}
        run.figures["placements_unchanged"] = before["pg_dist_placement"] == after["pg_dist_placement"]

        def group_isolation(ops: list[Op]) -> dict:
            end = next((op.time for op in ops if op.process == "nemesis" and op.f == "heal"), run.now())
            groups = per_group(ops, [LOST, KEPT], fault.time + GRACE_S, end)
            run.figures["per_group"] = groups
            kept, lost = groups[KEPT], groups[LOST]
            bad = []
            if not moved:
                bad.append(f"pg_dist_node did not follow the failover of worker group {LOST}")
            if not run.figures["placements_unchanged"]:
                bad.append("pg_dist_placement changed across the failover")
            if kept["writes_in_window"]["fail"] + kept["writes_in_window"]["info"]:
                bad.append(f"writes to group {KEPT}'s shards failed while only group {LOST} was down: "
                           f"{kept['writes_in_window']}")
            if kept["writes_in_window"]["ok"] < 20:
                bad.append(f"too few writes on group {KEPT} during the fault: {kept['writes_in_window']}")
            if lost["writes_in_window"]["fail"] + lost["writes_in_window"]["info"] == 0:
                bad.append(f"no write to group {LOST}'s shards failed: the kill did not bite")
            for g, res in groups.items():
                if res["lost"]:
                    bad.append(f"group {g}: {res['lost']} acknowledged writes lost")
            return {"valid": not bad, "reason": "; ".join(bad), "per_group": groups}

        run.add_check("citus-group-isolation", group_isolation)
    assert_verdict(run.verdict)
