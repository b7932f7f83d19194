"""Transactions that touch several rows during a coordinator leader failure:
SIGKILL of PostgreSQL's postmaster on the leader (Patroni restarts it in
place or fails over) while bank transfers and paired inserts run through the
pooler beside the load and the probe. Every acknowledged transfer must be
applied exactly once, both sides; every paired insert whole or absent; no
prepared transaction left on a primary past the row's bound. On the
reference profile the bank's tables live on the coordinator alone (the
checker is exercised; atomic by construction); on the Citus profile the same
code distributes them over the worker groups. Target distributed-transactions
(10 s / RPO 0: no half-applied transaction)."""

import pytest

from conftest import assert_verdict
from harness.history import Op, pair_invocations
from harness.load.bank import BankLoad
from harness.load.prepared_xacts import PreparedXactsWatch
from harness.stack.steady_state import check_leader
from harness.stack.topology import discover

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("pooler"),
    pytest.mark.target("distributed-transactions"),
]

HELD_S = 1.0  # a transfer takes a few milliseconds when nothing is wrong


def test_transfers_under_failover(scenario_run):
    with scenario_run() as run:
        bank = run.add_workload(BankLoad(run.stack, run.history, run.key_base))
        run.add_workload(PreparedXactsWatch(run.stack, run.history))
        run.wait_until("transfers committing", lambda: bank.stable_for(1.0), timeout_s=30, interval_s=0.25)
        fault = run.nemesis.inject("pg-kill", "primary")
        run.sleep(1)
        run.wait_until("a single running leader again",
                       lambda: check_leader(discover(run.stack)).ok, timeout_s=60)
        run.wait_for_recovery()
        run.wait_until("transfers committing again", lambda: bank.stable_for(2.0), timeout_s=60,
                       interval_s=0.25)
        run.nemesis.heal(fault)
        run.figures["crashed_on"], run.figures["leader_after"] = fault.target, run.leader()
        run.figures["bank"] = bank.figures()

        def transfers_hit(ops: list[Op]) -> dict:
            """The crash must have met the transfers: some failed or ended unknown after it, or
            were held across the outage (the pooler keeps a client that is between transactions
            waiting for a new server connection: invoked after the crash, acknowledged over
            HELD_S later)."""
            invoked = pair_invocations(ops)
            failed = sum(1 for op in ops if op.f == "transfer" and op.type in ("fail", "info")
                         and op.time >= fault.time)
            held = sum(1 for i, op in enumerate(ops) if op.f == "transfer" and op.type == "ok"
                       and invoked[i] is not None and ops[invoked[i]].time >= fault.time
                       and op.time - ops[invoked[i]].time > HELD_S)
            run.figures["transfers_hit_by_the_fault"] = {"failed_or_unknown": failed, "held": held}
            return {"valid": failed + held > 0,
                    "reason": "" if failed + held else
                    f"no transfer failed, ended unknown or was held over {HELD_S:g} s after the crash"}

        run.add_check("transfers-hit", transfers_hit)
    assert_verdict(run.verdict)
    assert run.verdict["atomicity"]["transfers"]["acknowledged"] > 0
