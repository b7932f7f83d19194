"""The `pgchaos check` verdict: validity, target rows, waivers, exit codes, the JSON contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import PgchaosError
from harness.history import HistoryFormatError, Op, write_history
from harness.targets import TargetsError, load_targets
from harness.verdict import check_file, check_history, exit_code

ROW = "coordinator-failure"  # rto_s 10, rpo_s 0; waiver: kill up to 25 s


def run(
    fault: str = "kill",
    outage_s: float = 5.0,
    *,
    lost: bool = False,
    read_all: bool = True,
    read_outage_s: float | None = None,
    observed: bool = True,
) -> list[Op]:
    """Writes and reads every 0.5 s for 60 s; a fault at 10 s; both fail for ``outage_s``.

    With ``observed``, the observer records that the fault took effect.
    """
    ops: list[Op] = []

    def add(t: float, process: int | str, typ: str, f: str, value: Any, node: str | None = None) -> None:
        ops.append(Op(len(ops), t, process, typ, f, value, node))  # type: ignore[arg-type]

    fault_t, acked = 10.0, []
    for step in range(1, 121):
        t = step * 0.5
        if abs(t - fault_t) < 1e-9:
            add(t, "nemesis", "info", fault, {"target": "pg1"})
            if observed:
                add(t + 0.001, "observer", "ok", "fault-effect",
                    {"fault": len(ops) - 1, "target": "pg1", "evidence": "pg1 not running"}, "pg1")
        down_w = fault_t < t <= fault_t + outage_s
        down_r = fault_t < t <= fault_t + (outage_s if read_outage_s is None else read_outage_s)
        add(t, 1, "invoke", "write", step)
        add(t + 0.01, 1, "fail" if down_w else "ok", "write", step)
        if not down_w:
            acked.append(step)
        add(t + 0.02, 2, "invoke", "read", None)
        add(t + 0.03, 2, "fail" if down_r else "ok", "read", None if down_r else step)
    add(61.0, "nemesis", "info", "heal", {"target": "pg1", "fault": 0})
    if read_all:
        keys = acked[1:] if lost else acked
        add(62.0, 3, "invoke", "read-all", None)
        add(62.5, 3, "ok", "read-all", keys)
    return ops


def judge(ops: list[Op], row: str | None = ROW, **kw: Any) -> dict[str, Any]:
    targets = load_targets()
    if row is None:
        return check_history(ops, **kw)
    return check_history(ops, targets.row(row), targets.waivers_for(row), **kw)


def test_clean_run_passes() -> None:
    result = judge(run(outage_s=3.0))
    assert (result["valid"], result["verdict"], exit_code(result)) == (True, "pass", 0)
    assert result["rto_s"]["write"] == pytest.approx(3.51)
    assert result["rto_s"]["read"] == pytest.approx(3.53)
    assert result["reasons"] == [] and result["waivers"] == []


def test_contract_keys() -> None:
    result = judge(run(outage_s=3.0))
    assert {"valid", "rto_s", "rpo", "faults", "verdict", "target", "waivers", "reasons"} <= set(
        result
    )
    assert {"counts", "availability", "checkers"} <= set(result)
    assert set(result["rto_s"]) == {"write", "read"}
    assert {"lost", "lost_keys", "window_s", "unknown", "unexpected"} <= set(result["rpo"])
    (fault,) = result["faults"]
    assert {"index", "time", "f", "target", "healed_at", "rto_s"} <= set(fault)
    assert (fault["f"], fault["target"], fault["healed_at"]) == ("kill", "pg1", 61.0)
    assert result["target"]["rto_s"] == 10 and result["target"]["row"] == ROW
    assert result["counts"]["write"] == {"ok": 114, "fail": 6, "info": 0}
    assert {"rto", "rpo", "availability", "fault-effect", "after-recovery"} <= set(result["checkers"])
    assert result["gap_s"] == {"write": pytest.approx(2.5), "read": pytest.approx(2.5)}
    assert result["fault_effect"]["faults"][0]["observed"] is True
    json.dumps(result, allow_nan=False)


def test_without_target_a_40_s_outage_is_unjudged_not_pass() -> None:
    result = judge(run(fault="pause", outage_s=40.0), row=None)
    assert result["verdict"] == "unjudged" and result["target"] is None
    assert exit_code(result) == 4 and result["valid"] is False
    assert any("write 40.510 s" in r and "not judged" in r for r in result["reasons"])
    assert "no target row" in result["judged"]["rto"]
    assert [f["code"] for f in result["findings"] if f["severity"] == "unjudged"] == ["no-target"]


def test_without_target_safety_still_fails() -> None:
    result = judge(run(fault="pause", outage_s=4.0, lost=True), row=None)
    assert result["verdict"] == "fail" and exit_code(result) == 1


def test_no_fault_with_a_target_is_unjudged() -> None:
    ops = [op for op in run(outage_s=0.0) if op.process not in ("nemesis", "observer")]
    for i, op in enumerate(ops):
        op.index = i
    result = judge(ops)
    assert result["verdict"] == "unjudged" and exit_code(result) == 4
    assert any("no fault was injected" in r for r in result["reasons"])


def _without_fault() -> list[Op]:
    ops = [op for op in run(outage_s=0.0) if op.process not in ("nemesis", "observer")]
    for i, op in enumerate(ops):
        op.index = i
    return ops


def test_no_target_no_fault_no_check_is_unjudged_not_pass() -> None:
    result = check_history(_without_fault())
    assert result["verdict"] == "unjudged" and exit_code(result) == 4, result["reasons"]
    assert [f["code"] for f in result["findings"] if f["severity"] == "unjudged"] == ["nothing-judged"]


def test_no_target_no_fault_is_judged_by_the_scenario_checks() -> None:
    passed = check_history(_without_fault(), checks={"capacity": lambda ops: {"valid": True}})
    assert passed["verdict"] == "pass" and "capacity" in passed["judged"]["checks"]
    refused = {"valid": False, "reason": "refused"}
    failed = check_history(_without_fault(), checks={"capacity": lambda ops: refused})
    assert failed["verdict"] == "fail" and any("refused" in r for r in failed["reasons"])
    unknown = check_history(_without_fault(), checks={"capacity": lambda ops: {"valid": "unknown"}})
    assert unknown["verdict"] == "unknown"
    recorded = check_history(_without_fault(), recorded={"dr-test": {"valid": True}})
    assert recorded["verdict"] == "pass" and "dr-test" in recorded["judged"]["checks"]


def test_rto_within_the_margin_of_its_target_is_marginal() -> None:
    result = judge(run(fault="pause", outage_s=9.0))  # 9.51 s of 10 s
    assert result["verdict"] == "marginal" and result["valid"] is True
    assert exit_code(result) == 3 and exit_code(result, marginal_fails=True) == 1
    (m,) = [m for m in result["margins"] if m["kind"] == "write"]
    assert m["ratio"] == pytest.approx(0.951) and m["marginal"] is True
    assert any("95% of its bound" in r for r in result["reasons"])
    clear = judge(run(fault="pause", outage_s=5.0))  # 5.51 s: 55 %
    assert clear["verdict"] == "pass" and exit_code(clear) == 0
    tighter = check_history(run(fault="pause", outage_s=9.0), load_targets().row(ROW), margin=0.04)
    assert tighter["verdict"] == "pass"


def test_commit_hanging_to_the_end_fails_every_entry_point(tmp_path: Path) -> None:
    """The only writer's COMMIT hangs from the kill to the end; reads keep working."""
    ops = [op for op in run(outage_s=0.0) if not (op.f == "write" and op.time > 10.0)]
    ops.append(Op(0, 10.2, 1, "invoke", "write", 999))
    ops.sort(key=lambda op: op.time)
    for i, op in enumerate(ops):
        op.index = i
    result = judge(ops)
    assert result["verdict"] == "fail" and exit_code(result) == 1
    assert any("writes never recovered" in r for r in result["reasons"])
    path = tmp_path / "history.jsonl"
    write_history(path, ops)
    assert check_file(path, ROW)["verdict"] == "fail"


def test_rto_over_target_fails() -> None:
    result = judge(run(fault="pause", outage_s=12.0))
    assert (result["valid"], result["verdict"], exit_code(result)) == (False, "fail", 1)
    assert any("write RTO 12.510 s > target 10.000 s" in r for r in result["reasons"])
    assert result["waivers"] == []


def test_kill_within_waiver_bound_is_waived() -> None:
    result = judge(run(fault="kill", outage_s=21.0))
    assert result["valid"] is False  # strict: never valid past a target
    assert (result["verdict"], exit_code(result)) == ("waived", 0)
    (waiver,) = result["waivers"]
    assert waiver["bound"] == 25 and waiver["reason"]
    assert [c["kind"] for c in waiver["covers"]] == ["write", "read"]
    assert all("waived" in r for r in result["reasons"])
    assert result["target"]["rto_s"] == 10  # the target itself is unchanged


def test_kill_past_waiver_bound_fails() -> None:
    result = judge(run(fault="kill", outage_s=26.0))
    assert (result["verdict"], exit_code(result)) == ("fail", 1)
    assert any("past the waiver bound 25.000 s" in r for r in result["reasons"])


def test_waiver_covers_only_its_faults() -> None:
    result = judge(run(fault="pause", outage_s=21.0))
    assert result["verdict"] == "fail"


def test_waiver_needs_every_figure_covered() -> None:
    # writes within the waiver bound, reads past it
    result = judge(run(fault="kill", outage_s=21.0, read_outage_s=30.0))
    assert result["verdict"] == "fail"
    assert len(result["waivers"]) == 1


def test_lost_writes_are_never_waived() -> None:
    result = judge(run(fault="kill", outage_s=21.0, lost=True))
    assert (result["verdict"], exit_code(result)) == ("fail", 1)
    assert result["rpo"]["lost"] == 1 and result["rpo"]["lost_keys"] == [1]
    assert any("1 acknowledged write(s) lost" in r for r in result["reasons"])


def test_lost_writes_fail_without_target() -> None:
    assert judge(run(lost=True), row=None)["verdict"] == "fail"


def test_unrecovered_fault_fails_and_top_level_rto_is_null() -> None:
    result = judge(run(outage_s=100.0), row=None)
    assert result["verdict"] == "fail"
    assert result["rto_s"] == {"write": None, "read": None}
    assert any("writes never recovered" in r for r in result["reasons"])


def test_no_ops_after_fault_fails_and_an_absent_path_is_noted() -> None:
    ops = [
        Op(0, 1.0, 1, "ok", "write", 1),
        Op(1, 1.1, 2, "ok", "read", 1),
        Op(2, 2.0, "nemesis", "info", "kill", {"target": "pg1"}),
        Op(3, 2.1, "observer", "ok", "fault-effect", {"fault": 2, "target": "pg1", "evidence": "x"}),
        Op(4, 5.0, 1, "ok", "write", 2),
        Op(5, 5.1, 1, "ok", "write", 3),
        Op(6, 6.0, 3, "ok", "read-all", [1, 2, 3]),
    ]
    result = judge(ops)
    assert result["verdict"] == "fail"  # reads worked before the kill and never after: no evidence
    assert result["faults"][0]["rto_s"] == {"write": pytest.approx(3.0), "read": None}
    assert any("reads never recovered" in r for r in result["reasons"])
    without_reads = [op for op in ops if op.f != "read"]
    for i, op in enumerate(without_reads):
        op.index = i
    without_reads[2] = Op(2, 2.1, "observer", "ok", "fault-effect", {"fault": 1, "target": "pg1", "evidence": "x"})
    result = judge(without_reads)
    assert result["verdict"] == "pass"
    assert any("no read in the history" in n for n in result["notes"])


def test_no_read_all_is_unknown() -> None:
    result = judge(run(outage_s=3.0, read_all=False))
    assert (result["valid"], result["verdict"], exit_code(result)) == (False, "unknown", 1)
    assert result["checkers"]["rpo"]["valid"] == "unknown"
    assert result["rpo"]["lost"] is None


def test_a_crashing_checker_is_unknown_never_a_pass() -> None:
    ops = run(outage_s=3.0)
    ops[-1].value = {"not": "a list"}
    result = judge(ops)
    assert result["verdict"] == "unknown"
    assert "TypeError" in result["checkers"]["rpo"]["error"]


def test_fail_wins_over_unknown() -> None:
    result = judge(run(fault="pause", outage_s=12.0, read_all=False))
    assert result["verdict"] == "fail"


def test_unexpected_key_fails() -> None:
    ops = run(outage_s=3.0)
    ops[-1].value = [*ops[-1].value, 22]  # key 22 failed during the outage
    result = judge(ops, row=None)
    assert result["verdict"] == "fail"
    assert result["rpo"]["unexpected"] == 1


def test_loss_allowed_within_a_positive_rpo() -> None:
    ops = run(outage_s=3.0, lost=True)  # key 1 acked at 0.51, fault at 10: window 9.49 s
    result = judge(ops, row="complete-cluster-loss")
    assert result["verdict"] == "pass"
    assert result["rpo"]["window_s"] == pytest.approx(9.49)
    assert judge(ops, row="complete-cluster-loss", backup_age_s=90000)["verdict"] == "fail"
    assert judge(ops, row="complete-cluster-loss", backup_age_s=3600)["verdict"] == "pass"


@given(st.floats(min_value=0.5, max_value=40.0), st.sampled_from(["kill", "pause", "stop"]))
def test_verdict_follows_the_worst_rto(outage_s: float, fault: str) -> None:
    result = judge(run(fault=fault, outage_s=outage_s))
    worst = max(result["rto_s"].values())
    if worst <= 8.5:
        expected = "pass"
    elif worst <= 10:
        expected = "marginal"
    elif fault == "kill" and worst <= 25:
        expected = "waived"
    else:
        expected = "fail"
    assert result["verdict"] == expected
    assert result["valid"] is (expected in ("pass", "marginal"))


def test_check_file(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    write_history(path, run(fault="kill", outage_s=21.0))
    assert check_file(path)["verdict"] == "unjudged"
    assert check_file(str(path), target_row=ROW)["verdict"] == "waived"


def test_check_file_with_own_targets(tmp_path: Path) -> None:
    path, targets = tmp_path / "history.jsonl", tmp_path / "targets.toml"
    write_history(path, run(fault="kill", outage_s=21.0))
    targets.write_text('[strict]\nsource = "pgchaos"\nrto_s = 5\nrpo_s = 0\n')
    result = check_file(path, "strict", targets_path=targets)
    assert result["verdict"] == "fail" and result["target"]["row"] == "strict"


def test_check_file_unknown_row_lists_rows(tmp_path: Path) -> None:
    with pytest.raises(TargetsError, match="valid rows: .*coordinator-failure"):
        check_file(tmp_path / "not-even-read.jsonl", "nope")


def test_check_file_malformed_history(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    write_history(path, run(outage_s=3.0))
    lines = path.read_text().splitlines()
    lines[41] = lines[41].replace('"type":"ok"', '"type":"done"')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(HistoryFormatError) as err:
        check_file(path, ROW)
    assert err.value.line == 42
    assert isinstance(err.value, PgchaosError)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("verdict", "code"), [("pass", 0), ("waived", 0), ("fail", 1), ("unknown", 1)]
)
def test_exit_code(verdict: str, code: int) -> None:
    assert exit_code({"verdict": verdict}) == code


def test_a_fault_without_observation_is_unknown_never_pass() -> None:
    result = judge(run(outage_s=3.0, observed=False))
    assert (result["valid"], result["verdict"], exit_code(result)) == (False, "unknown", 1)
    (fault,) = result["faults"]
    assert f"fault #{fault['index']} (kill on pg1): no observation that it took effect" in result["reasons"]
    assert result["checkers"]["fault-effect"]["valid"] == "unknown"
    # the same history, observed, passes; a failing run stays a failure
    assert judge(run(outage_s=3.0))["verdict"] == "pass"
    assert judge(run(fault="pause", outage_s=12.0, observed=False))["verdict"] == "fail"


def test_an_observation_that_saw_nothing_is_unknown_with_its_evidence() -> None:
    ops = run(outage_s=3.0)
    (obs,) = [op for op in ops if op.process == "observer"]
    obs.type, obs.value = "fail", {**obs.value, "evidence": "pg1 still running, leader unchanged"}
    result = judge(ops)
    assert result["verdict"] == "unknown"
    assert any("pg1 still running, leader unchanged" in r for r in result["reasons"])


def test_observations_do_not_disturb_the_figures() -> None:
    plain, observed = judge(run(outage_s=3.0, observed=False)), judge(run(outage_s=3.0))
    for key in ("rto_s", "rpo", "counts", "availability"):
        assert plain[key] == observed[key], key
    assert [f["rto_s"] for f in plain["faults"]] == [f["rto_s"] for f in observed["faults"]]


def test_unconfirmed_recovery_is_unknown() -> None:
    ops = [
        Op(0, 1.0, 1, "ok", "write", 1),
        Op(1, 2.0, "nemesis", "info", "kill", {"target": "pg1"}),
        Op(2, 2.1, "observer", "ok", "fault-effect", {"fault": 1, "target": "pg1", "evidence": "x"}),
        Op(3, 5.0, 1, "ok", "write", 2),  # a lone ok, then the history ends
        Op(4, 6.0, 3, "ok", "read-all", [1, 2]),
    ]
    result = judge(ops)
    assert result["verdict"] == "unknown"
    assert any("write recovery not confirmed" in r for r in result["reasons"])


def test_scenario_checks_are_composed_into_the_verdict() -> None:
    ops = run(outage_s=3.0)
    bad = judge(ops, checks={"shard-isolation": lambda ops: {"valid": False, "reason": "2 on worker-1"}})
    assert bad["verdict"] == "fail" and "shard-isolation: 2 on worker-1" in bad["reasons"]
    assert bad["checkers"]["shard-isolation"] == {"valid": False, "reason": "2 on worker-1",
                                                  "source": "scenario"}

    def broken(ops: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    unjudged = judge(ops, checks={"broken": broken})
    assert unjudged["verdict"] == "unknown"
    assert any(r.startswith("broken could not judge: RuntimeError: boom") for r in unjudged["reasons"])
    good = judge(ops, checks={"fine": lambda ops: {"valid": True}})
    assert good["verdict"] == "pass" and good["scenario_checks"]["fine"]["valid"] is True
    recorded = judge(ops, recorded={"closure": {"valid": False, "reason": "seen live"}})
    assert recorded["verdict"] == "fail"
    assert recorded["scenario_checks"]["closure"]["source"] == "recorded"


def test_writes_failing_after_recovery_fail_the_run() -> None:
    ops = run(outage_s=3.0)
    next(op for op in ops if op.f == "heal").time = 20.0  # healed (and recovered) long before 40 s
    late = next(op for op in ops if op.f == "write" and op.type == "ok" and op.time > 40)
    late.type = "fail"
    ops[-1].value = [k for k in ops[-1].value if k != late.value]
    result = judge(ops)
    assert result["verdict"] == "fail"
    assert result["scenario_checks"]["after-recovery"]["failures"] == 1
    assert any("failed after every fault was healed" in r for r in result["reasons"])


def test_cli_check_takes_a_targets_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    path, targets = tmp_path / "history.jsonl", tmp_path / "targets.toml"
    write_history(path, run(outage_s=3.0))
    targets.write_text('[strict]\nsource = "pgchaos"\nrto_s = 2\nrpo_s = 0\n')
    assert main(["check", str(path), "--target", "strict", "--targets", str(targets)]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] == "fail" and result["target"]["row"] == "strict"
    assert main(["check", str(path), "--target", ROW]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "pass"


def test_a_fault_without_any_traffic_is_unjudged_even_with_a_target() -> None:
    ops = [op for op in run(outage_s=3.0) if op.f not in ("write", "read")]
    for i, op in enumerate(ops):
        op.index = i
        if op.f == "read-all" and op.type == "ok":
            op.value = []  # nothing was written
        if op.f == "fault-effect":
            op.value = {**op.value, "fault": i - 1}  # the fault op just before it, renumbered
    result = judge(ops)
    assert result["verdict"] == "unjudged" and exit_code(result) == 4
    assert any("no write or read in the history" in r for r in result["reasons"])


def test_a_built_in_checker_is_one_entry_of_the_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new built-in checker added as one PIPELINE entry runs where it applies, is given
    its options and the results before it, and an invalid result fails the verdict naming it."""
    from harness import verdict as verdict_module

    seen: dict[str, Any] = {}

    def too_slow(ops: Any, *, rto_write: float | None) -> dict[str, Any]:
        seen["rto_write"] = rto_write
        return {"valid": rto_write is not None and rto_write < 1.0, "reason": f"write RTO {rto_write} >= 1 s"}

    extra = verdict_module.BuiltinCheck(
        "one-second", too_slow, worded=False,
        applies=lambda c: any(op.f == "kill" for op in c.ops),
        options=lambda c: {"rto_write": c.results["rto"]["rto_s"]["write"]})
    monkeypatch.setattr(verdict_module, "PIPELINE", (*verdict_module.PIPELINE, extra))
    result = judge(run(outage_s=3.0))
    assert seen["rto_write"] == pytest.approx(3.51)
    assert result["verdict"] == "fail" and any("one-second" in r for r in result["reasons"]), result["reasons"]
    assert result["checkers"]["one-second"]["valid"] is False
    assert judge(_without_fault(), row=None)["checkers"].get("one-second") is None  # where it applies only
