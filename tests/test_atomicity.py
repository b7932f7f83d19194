"""The atomicity checker on synthetic histories: transfers and paired inserts whole or
absent, orphaned prepared transactions, read skew, and the verdict they make."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.checkers.atomicity import atomicity
from harness.history import Op, write_history
from harness.targets import Target, TargetsError, load_targets, parse_targets
from harness.verdict import check_file, check_history

ROW = Target("distributed-transactions", 10.0, 0.0, "pgchaos", prepared_xacts_s=30.0)
ACCOUNTS = {1: 100, 2: 100, 3: 100, 4: 100}


@dataclass
class T:
    """One transfer: its outcome as the client saw it, and what the final state holds."""

    key: int
    src: int
    dst: int
    amount: int
    outcome: str = "ok"  # ok / fail / info / open (never completed)
    applied: str = "both"  # both / none / debit / credit / twice


@dataclass
class P:
    key: int
    outcome: str = "ok"
    present: str = "both"  # both / none / order / line


class History:
    """A clean failover run (writes and reads every 0.5 s, a 5 s outage at 10 s, healed)
    with bank traffic beside it and a final read of the bank's state."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def add(self, t: float, process: int | str, typ: str, f: str, value: Any, node: str | None = None) -> None:
        self.ops.append(Op(len(self.ops), t, process, typ, f, value, node))  # type: ignore[arg-type]

    def build(self, transfers: list[T], paired: list[P], totals: list[int] = (),
              prepared: list[tuple[float, str, bool, list[dict[str, Any]]]] = (), final: bool = True,
              balance_fix: dict[int, int] | None = None) -> list[Op]:
        acked = []
        for step in range(1, 121):
            t = step * 0.5
            if t == 10.0:
                self.add(t, "nemesis", "info", "pg-kill", {"target": "pg1"})
                self.add(t + 0.001, "observer", "ok", "fault-effect",
                         {"fault": len(self.ops) - 1, "target": "pg1", "evidence": "pg1 not running"}, "pg1")
            down = 10.0 < t <= 15.0
            self.add(t, 1, "invoke", "write", step)
            self.add(t + 0.01, 1, "fail" if down else "ok", "write", step)
            acked += [] if down else [step]
            self.add(t + 0.02, 2, "invoke", "read", None)
            self.add(t + 0.03, 2, "fail" if down else "ok", "read", None if down else step)
            # the bank's clients, one op of each kind per step while there are some left
            if step <= len(transfers):
                tr = transfers[step - 1]
                v = {"key": tr.key, "from": tr.src, "to": tr.dst, "amount": tr.amount}
                self.add(t + 0.04, 900, "invoke", "transfer", v)
                if tr.outcome != "open":
                    self.add(t + 0.05, 900, tr.outcome, "transfer", v)
            if step <= len(paired):
                p = paired[step - 1]
                self.add(t + 0.06, 950, "invoke", "paired-insert", {"key": p.key, "amount": 5})
                if p.outcome != "open":
                    self.add(t + 0.07, 950, p.outcome, "paired-insert", {"key": p.key, "amount": 5})
            if step <= len(totals):
                self.add(t + 0.08, 960, "invoke", "read-total", None)
                self.add(t + 0.09, 960, "ok", "read-total", {"total": totals[step - 1], "accounts": 4})
        self.add(61.0, "nemesis", "info", "heal", {"target": "pg1", "fault": 0})
        for when, member, primary, xacts in prepared:
            self.add(when, "observer", "ok", "prepared-xacts",
                     {"member": member, "primary": primary, "xacts": xacts}, member)
        self.add(62.0, 0, "invoke", "read-all", None)
        self.add(62.5, 0, "ok", "read-all", acked)
        if final:
            self.add(63.0, 970, "invoke", "bank-final", None)
            self.add(63.5, 970, "ok", "bank-final", state(transfers, paired, balance_fix))
        return self.ops


def state(transfers: list[T], paired: list[P], balance_fix: dict[int, int] | None = None) -> dict[str, Any]:
    """The final state the transfers and paired inserts leave, as the bank's final read records it."""
    balances = dict(ACCOUNTS)
    entries = []
    for tr in transfers:
        times = {"both": 1, "twice": 2}.get(tr.applied, 1)
        for _ in range(times if tr.applied != "none" else 0):
            if tr.applied in ("both", "twice", "debit"):
                balances[tr.src] -= tr.amount
                entries.append([tr.key, tr.src, -tr.amount])
            if tr.applied in ("both", "twice", "credit"):
                balances[tr.dst] += tr.amount
                entries.append([tr.key, tr.dst, tr.amount])
    for account, delta in (balance_fix or {}).items():
        balances[account] += delta
    return {"accounts": sorted(map(list, balances.items())), "initial": sorted(map(list, ACCOUNTS.items())),
            "entries": sorted(entries),
            "orders": sorted(p.key for p in paired if p.present in ("both", "order")),
            "lines": sorted(p.key for p in paired if p.present in ("both", "line"))}


CLEAN_T = [T(101, 1, 2, 10), T(102, 2, 3, 20), T(103, 3, 4, 5, "info", "both"), T(104, 4, 1, 7, "info", "none"),
           T(105, 1, 3, 9, "fail", "none"), T(106, 2, 4, 3, "open", "both"), T(107, 3, 1, 4)]
CLEAN_P = [P(201), P(202, "info", "none"), P(203, "info", "both"), P(204, "fail", "none"), P(205)]


def codes(result: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in result["findings"]:
        out.setdefault(f["code"], []).append(f["text"])
    return out


def judge(transfers: list[T] = CLEAN_T, paired: list[P] = CLEAN_P, target: Target = ROW, **kw: Any) -> dict:
    return check_history(History().build(transfers, paired, **kw), target)


def test_clean_run_passes_and_counts() -> None:
    result = judge()
    assert result["verdict"] == "pass", result["reasons"]
    t = result["atomicity"]["transfers"]
    assert (t["acknowledged"], t["unknown"], t["failed"], t["half_applied"]) == (3, 3, 1, 0)
    assert t["unknown_applied"] == 2 and t["total_final"] == t["total_initial"] == 400
    p = result["atomicity"]["paired"]
    assert (p["acknowledged"], p["unknown"], p["failed"], p["whole"]) == (2, 2, 1, 3)
    assert "transfers: 3 acknowledged, 3 unknown" in " ".join(codes(result)["atomicity"])


def test_one_sided_transfer_fails_naming_its_key() -> None:
    transfers = [*CLEAN_T[:-1], T(107, 3, 1, 4, "ok", "debit")]
    result = judge(transfers)
    assert result["verdict"] == "fail"
    found = codes(result)
    half = found["atomicity-half-applied"][0]
    assert "transfer 107" in half and "debited 3" in half and "credited 1" in half
    assert "atomicity-total" in found  # money left the bank


def test_citus_findings_name_the_shards() -> None:
    ops = History().build([*CLEAN_T[:-1], T(107, 3, 1, 4, "ok", "credit")], [*CLEAN_P, P(206, "ok", "line")])
    final = ops[-1].value
    final["shards"] = {"bank_accounts": {"1": [102008, 2], "3": [102010, 1]},
                       "bank_orders": {"206": [102020, 1]}, "bank_order_lines": {"206": [102031, 2]}}
    found = codes(check_history(ops, ROW))
    transfer, pair = found["atomicity-half-applied"]
    assert "debited 3 (shard 102010, group 1) ×0, credited 1 (shard 102008, group 2) ×1" in transfer
    assert "line (shard 102031, group 2) without its order (shard 102020, group 1)" in pair


def test_one_sided_unknown_transfer_fails_too() -> None:
    result = judge([*CLEAN_T, T(108, 2, 1, 6, "info", "credit")])
    assert "transfer 108 (info" in codes(result)["atomicity-half-applied"][0]
    assert result["verdict"] == "fail"


def test_double_apply_fails() -> None:
    result = judge([*CLEAN_T[:-1], T(107, 3, 1, 4, "ok", "twice")])
    assert result["verdict"] == "fail"
    assert "transfer 107 (ok): applied 2 times" in codes(result)["atomicity-doubled"][0]


def test_lost_acknowledged_transfer_fails_on_an_rpo_0_row_and_is_noted_otherwise() -> None:
    transfers = [*CLEAN_T[:-1], T(107, 3, 1, 4, "ok", "none")]
    result = judge(transfers)
    assert result["verdict"] == "fail"
    assert "107" in codes(result)["atomicity-lost"][0]
    lenient = Target("loss-allowed", 10.0, 86400.0, "pgchaos", prepared_xacts_s=30.0)
    relaxed = judge(transfers, target=lenient)
    assert relaxed["verdict"] == "pass" and "atomicity-lost" in codes(relaxed)
    assert {f["severity"] for f in relaxed["findings"] if f["code"] == "atomicity-lost"} == {"note"}


def test_failed_transfer_that_was_applied_fails() -> None:
    result = judge([*CLEAN_T, T(108, 1, 2, 1, "fail", "both")])
    assert "108" in codes(result)["atomicity-failed-applied"][0] and result["verdict"] == "fail"


def test_balance_without_its_entry_fails() -> None:
    result = judge(balance_fix={2: -5, 3: 5})  # the total holds, two shards disagree with their entries
    found = codes(result)
    assert result["verdict"] == "fail" and "atomicity-total" not in found
    assert "account 2" in found["atomicity-balance"][0] and "account 3" in found["atomicity-balance"][0]


def test_half_present_paired_insert_fails() -> None:
    result = judge(paired=[*CLEAN_P, P(206, "ok", "order"), P(207, "info", "line")])
    text = codes(result)["atomicity-half-applied"][0]
    assert "key 206 (ok): order without its line" in text and "key 207 (info): line without its order" in text
    assert result["verdict"] == "fail"


def test_lost_acknowledged_paired_insert_fails() -> None:
    result = judge(paired=[*CLEAN_P, P(206, "ok", "none")])
    assert "206" in codes(result)["atomicity-lost"][0] and result["verdict"] == "fail"


def test_orphaned_prepared_transaction_fails_naming_member_gid_and_age() -> None:
    orphan = [{"gid": "citus_0_1234_7_9", "database": "db", "age_s": 45.2}]
    result = judge(prepared=[(61.5, "worker-1a", True, []), (70.0, "worker-2a", True, orphan)])
    assert result["verdict"] == "fail"
    text = codes(result)["prepared-orphan"][0]
    assert "worker-2a" in text and "citus_0_1234_7_9" in text and "45.2 s" in text
    assert result["atomicity"]["prepared"]["longest"]["gid"] == "citus_0_1234_7_9"


def test_young_or_replica_prepared_transactions_pass() -> None:
    young = [{"gid": "citus_0_1_1_1", "database": "db", "age_s": 0.2}]
    old = [{"gid": "citus_0_1_1_2", "database": "db", "age_s": 99.0}]
    result = judge(prepared=[(61.5, "worker-1a", True, young), (61.6, "worker-1b", False, old)])
    assert result["verdict"] == "pass", result["reasons"]
    assert "prepared-orphan" not in codes(result)


def test_prepared_transactions_without_a_bound_are_reported_not_judged() -> None:
    orphan = [{"gid": "g1", "database": "db", "age_s": 45.0}]
    no_bound = Target("no-bound", 10.0, 0.0, "pgchaos")
    result = judge(target=no_bound, prepared=[(70.0, "worker-1a", True, orphan)])
    assert result["verdict"] == "pass" and "g1" in codes(result)["prepared-unjudged"][0]


def test_read_skew_is_a_note_unless_the_row_promises_snapshot_reads() -> None:
    totals = [400, 400, 390, 400]
    result = judge(totals=totals)
    assert result["verdict"] == "pass"
    note = codes(result)["read-skew"][0]
    assert "390 at 1.590 s" in note and "invariant 400" in note
    strict = Target("snapshot", 10.0, 0.0, "pgchaos", prepared_xacts_s=30.0, snapshot_reads=True)
    assert judge(totals=totals, target=strict)["verdict"] == "fail"
    assert "read-skew" not in codes(judge(totals=[400, 400]))


def test_no_final_bank_read_is_unknown() -> None:
    result = judge(final=False)
    assert result["verdict"] == "unknown" and "atomicity-unknown" in codes(result)


def test_existing_checkers_ignore_the_new_kinds() -> None:
    """RTO, RPO and availability of a history are the same with and without bank ops."""
    plain = check_history(History().build([], [], final=False), ROW)
    failing = [T(300 + i, 1, 2, 1, "info" if i % 2 else "fail", "none") for i in range(40)]
    with_bank = judge(failing, [P(400 + i, "fail", "none") for i in range(40)])
    assert with_bank["rto_s"] == plain["rto_s"] and with_bank["rpo"] == plain["rpo"]
    assert with_bank["availability"] == plain["availability"]
    assert plain["atomicity"] is None and "atomicity" not in plain["checkers"]


def test_checker_alone_and_through_a_file(tmp_path: Path) -> None:
    ops = History().build(CLEAN_T, CLEAN_P)
    assert atomicity(ops)["valid"] is True
    path = tmp_path / "history.jsonl"
    write_history(path, ops)
    assert check_file(path)["atomicity"]["transfers"]["acknowledged"] == 3


def test_row_fields_parse_and_stay_out_of_old_documents() -> None:
    t = parse_targets({"a": {"source": "pgchaos", "rto_s": 10, "rpo_s": 0, "prepared_xacts_s": 30,
                             "snapshot_reads": True}}).row("a")
    assert (t.prepared_xacts_s, t.snapshot_reads) == (30.0, True)
    assert "prepared_xacts_s" not in parse_targets({"a": {"source": "pgchaos", "rto_s": 10, "rpo_s": 0}}
                                                   ).row("a").to_dict()
    with pytest.raises(TargetsError, match="snapshot_reads"):
        parse_targets({"a": {"source": "pgchaos", "rto_s": 10, "rpo_s": 0, "snapshot_reads": "yes"}})
    with pytest.raises(TargetsError, match="prepared_xacts_s"):
        parse_targets({"a": {"source": "pgchaos", "rto_s": 10, "rpo_s": 0, "prepared_xacts_s": -1}})


def test_shipped_row_bounds_prepared_transactions() -> None:
    t = load_targets().row("distributed-transactions")
    assert t.rpo_s == 0 and t.prepared_xacts_s is not None and t.snapshot_reads is False


@st.composite
def consistent_runs(draw: st.DrawFn) -> list[T]:
    """Transfers whose final state agrees with what each client was told."""
    out = []
    for i in range(draw(st.integers(1, 30))):
        src, dst = draw(st.sampled_from([(a, b) for a in ACCOUNTS for b in ACCOUNTS if a != b]))
        outcome = draw(st.sampled_from(["ok", "info", "fail", "open"]))
        applied = {"ok": "both", "fail": "none"}.get(outcome) or draw(st.sampled_from(["both", "none"]))
        out.append(T(1000 + i, src, dst, draw(st.integers(1, 20)), outcome, applied))
    return out


@settings(max_examples=60, deadline=None)
@given(consistent_runs(), st.data())
def test_any_consistent_final_state_is_valid_and_any_one_sided_damage_is_named(transfers: list[T],
                                                                             data: st.DataObject) -> None:
    assert atomicity(History().build(transfers, []))["valid"] is True
    applied = [t for t in transfers if t.applied == "both"]
    if not applied:
        return
    victim = data.draw(st.sampled_from(applied))
    victim.applied = data.draw(st.sampled_from(["debit", "credit"]))
    result = atomicity(History().build(transfers, []))
    assert result["valid"] is False
    assert any(f["code"] == "atomicity-half-applied" and f"transfer {victim.key} " in f["text"]
               for f in result["findings"])


def test_recovery_of_transfers_is_measured_like_writes_and_never_judged() -> None:
    transfers = [T(500 + i, 1 + i % 4, 1 + (i + 1) % 4, 1, "fail" if 20 <= i < 30 else "ok",
                   "none" if 20 <= i < 30 else "both") for i in range(60)]
    result = judge(transfers, [])
    assert result["verdict"] == "pass", result["reasons"]
    (fault, by_kind), = result["atomicity"]["rto_s"].items()
    assert by_kind["transfer"] == pytest.approx(5.55, abs=0.01)  # first ok of the stable stretch after 10 s
    assert f"committing again transfer 5.550 s after fault #{fault}" in codes(result)["atomicity"][0]


def test_a_prepared_transactions_locks_show_as_unavailability_of_its_shards() -> None:
    holding = [{"gid": "citus_0_9_9_1", "database": "db", "age_s": 3.0, "relations": ["bank_accounts_102010"]}]
    on_replica = [{"gid": "citus_0_9_9_2", "database": "db", "age_s": 50.0, "relations": ["bank_accounts_102008"]}]
    ops = History().build(CLEAN_T, CLEAN_P, prepared=[(4.0, "worker-1a", True, holding),
                                                       (4.1, "worker-1b", False, on_replica)])
    ops[-1].value["shards"] = {"bank_accounts": {"1": [102008, 2], "2": [102009, 2], "3": [102010, 1],
                                                 "4": [102011, 1]}}
    result = check_history(ops, ROW)
    assert result["verdict"] == "pass", result["reasons"]  # young: a note, not an orphan
    (held,) = result["atomicity"]["prepared"]["held"]
    # account 3's shard, held 1.0-4.0 s: transfers 102 and 107 (ok), 103 (info) and 105 (fail) touch it
    assert (held["member"], held["gid"], held["shards"]) == ("worker-1a", "citus_0_9_9_1", [102010])
    assert (held["transfers_touching"], held["transfers_failed"]) == (4, 2)
    assert held["unavailable_s"] == pytest.approx(1.01, abs=0.001)
    assert "bank_accounts_102010 for 3.0 s" in codes(result)["prepared-locks"][0]


def test_prepared_transactions_holding_no_table_or_briefly_are_not_said_to_hold_shards() -> None:
    brief = [{"gid": "g-brief", "database": "db", "age_s": 0.3, "relations": ["bank_accounts_102010"]}]
    bare = [{"gid": "g-bare", "database": "db", "age_s": 9.0}]  # an older sample without relations
    result = judge(prepared=[(4.0, "worker-1a", True, brief), (5.0, "worker-2a", True, bare)])
    assert result["atomicity"]["prepared"]["held"] == [] and "prepared-locks" not in codes(result)
