"""Citus profile — a worker lost for good: the guide's DR scenario 2 manual
runbook (target worker-failure: 300 s / RPO 0), executed under load.

The primary of worker group 1 is killed and stays dead; Patroni promotes the
group's standby on its own, and the operator replaces the worker as the guide
says: detection with `citus_get_active_worker_nodes()`, `citus_remove_node`
of the failed worker, `citus_add_node` of a replacement (the manifest's spare
group, `[[groups]]` with `spare = true`: worker-3a/3b, started now; Patroni
registers its primary itself), `rebalance_table_shards` per table,
`citus_rebalance_status()`. Each guide step runs as written against this
stack's addresses; a step Citus refuses is a finding (its error is in the
figures, `runbook` and `guide_steps_failed`), and the working procedure then
runs as separate steps labelled `working procedure`: `citus_drain_node` of
group 1, the group's survivor killed, its pg_dist_node rows removed. The
steps are `harness.citus_runbooks.WorkerReplacement`'s, the same that
`pgchaos drill worker-failure` runs on a Citus stack. The runbook time
(fault -> group 1 retired, its shards on the other groups, every key
writable) is judged against the row's RTO; RPO 0 over every acknowledged
write, per group too. Bank transfers across worker groups run throughout: none
may be lost, doubled or half-applied (the failed group's accounts are drained to
the others mid-way); prepared transactions left on a primary are reported with
their age (the guide's row sets no bound for them).

Afterwards the stack is put back as it was found (not timed): group 1
restarted (re-registered), the spare group drained and removed, containers,
data, etcd keys and Toxiproxy links of the spare group deleted."""

import pytest
from citus_support import GroupWriters, per_group, start_bank

from conftest import assert_verdict
from harness.citus_runbooks import WorkerReplacement
from harness.history import Op
from harness.stack import citus
from harness.targets import load_targets

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.citus,
    pytest.mark.requires("citus", "worker-groups>=2", "spare-groups", "spare-services", "toxiproxy"),
    pytest.mark.target("worker-failure"),
]


def test_citus_worker_replacement(scenario_run):
    row = load_targets(None).row("worker-failure")
    with scenario_run() as run:
        runbook = WorkerReplacement(run)  # the first worker group lost, the manifest's spare replaces it
        dsn = runbook.dsn
        lost = runbook.lost_id
        kept = [g.citus_group for g in run.stack.manifest.worker_groups if g.citus_group != lost]
        groups = [lost, *kept]
        before = citus.metadata(dsn)
        run.figures["placements_before"] = citus.placements_per_group(dsn)
        writers = GroupWriters(run, groups).start()
        try:
            bank = start_bank(run)  # transfers across worker groups throughout the runbook
            run.sleep(2)
            fault = runbook.inject()
            # the guide's runbook, as written (Patroni's own failover in between)
            runbook.detect()
            runbook.remove_failed()
            runbook.await_failover()
            runbook.add_replacement()
            runbook.rebalance()
            runbook.monitor()
            # the working procedure: drain the failed worker, retire its group
            runbook.drain_failed()
            runbook.retire_failed()
            runbook.verify()
            run.wait_until("transfers committing after the replacement", lambda: bank.stable_for(2.0),
                           timeout_s=90, interval_s=0.25)
            run.figures["bank"] = bank.figures()
            run.sleep(1)
        finally:
            writers.stop()
            runbook.restore()
        run.figures["guide_steps_failed"] = runbook.book.failed_guide_steps()
        run.figures["placements_final"] = citus.placements_per_group(dsn)
        run.figures["metadata_rows_before"] = {"pg_dist_node": len(before["pg_dist_node"]),
                                               "pg_dist_placement": len(before["pg_dist_placement"])}

        def replacement(ops: list[Op]) -> dict:
            per = per_group(ops, groups, fault.time + 1.0, fault.time + (runbook.runbook_s or 0))
            run.figures["per_group"] = per
            bad = runbook.problems(row.rto_s, row.row)
            for g, res in per.items():
                if res["lost"]:
                    bad.append(f"group {g}: {res['lost']} acknowledged writes lost")
            return {"valid": not bad, "reason": "; ".join(bad), "runbook_s": runbook.runbook_s,
                    "guide_steps_failed": run.figures["guide_steps_failed"]}

        run.add_check("worker-replacement-runbook", replacement)
    assert_verdict(run.verdict)
