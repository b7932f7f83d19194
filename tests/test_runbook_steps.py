"""Runbook steps as phases: client failures while a step runs are that step's,
judged against the row, not unexplained failures after recovery (synthetic histories)."""

from __future__ import annotations

from test_verdict import ROW, run

from harness.checkers.runbook_steps import runbook_steps, step_windows
from harness.history import Op
from harness.targets import load_targets
from harness.verdict import check_history

STEP = "4. rebalance_table_shards('events')"


def with_step(fail_from: float, fail_to: float, *, recorded: bool = True) -> list[Op]:
    """A pause at 10 s, healed at 13 s, recovered; then writes fail from ``fail_from`` to
    ``fail_to`` (a runbook step spanning them, when ``recorded``). Failed writes are not in
    the final read."""
    ops = run(fault="pause", outage_s=2.0)
    for op in ops:
        if op.f == "heal":
            op.time = 13.0
    failed: set[int] = set()
    for op in ops:
        if op.f == "write" and op.type == "ok" and fail_from <= op.time <= fail_to:
            op.type, op.error = "fail", "57014: canceling statement due to statement timeout"
            failed.add(op.value)
    for op in ops:
        if op.f == "read-all" and op.type == "ok":
            op.value = [k for k in op.value if k not in failed]
    if recorded:
        ops += [Op(0, fail_from - 0.2, "observer", "info", "runbook-step",
                   {"step": STEP, "state": "begin", "guide": True}),
                Op(0, fail_to + 0.2, "observer", "info", "runbook-step",
                   {"step": STEP, "state": "end", "ok": True})]
    ops.sort(key=lambda op: op.time)
    for i, op in enumerate(ops):
        op.index = i
    return ops


def judge(ops: list[Op]) -> dict:
    targets = load_targets()
    return check_history(ops, targets.row(ROW), targets.waivers_for(ROW))


def test_failures_after_recovery_without_a_step_are_unexplained() -> None:
    result = judge(with_step(30.0, 32.0, recorded=False))
    assert result["verdict"] == "fail"
    assert any(f["code"] == "check:after-recovery" for f in result["findings"]), result["reasons"]


def test_failures_during_a_step_are_the_steps_and_within_the_row_a_note() -> None:
    result = judge(with_step(30.0, 32.0))
    codes = {f["code"]: f for f in result["findings"]}
    assert "check:after-recovery" not in codes, result["reasons"]
    assert "runbook-step-failures" in codes and "statement timeout" in codes["runbook-step-failures"]["text"]
    assert result["verdict"] in ("pass", "marginal"), result["reasons"]
    (step,) = result["runbook_steps"]
    assert step["step"] == STEP and step["failures"] == 4 and step["guide"] is True
    assert 2.0 <= step["unavailable_s"]["write"] <= 2.6, step


def test_a_step_that_keeps_writes_down_longer_than_the_row_fails_naming_it() -> None:
    result = judge(with_step(30.0, 42.0))
    outage = [f for f in result["findings"] if f["code"] == "runbook-step-outage"]
    assert result["verdict"] == "fail" and outage, result["reasons"]
    assert STEP in outage[0]["text"] and "> target 10" in outage[0]["text"]


def test_windows_pair_begin_and_end_and_an_open_step_runs_to_the_end() -> None:
    ops = with_step(30.0, 32.0)
    ops.append(Op(len(ops), 50.0, "observer", "info", "runbook-step", {"step": "5. monitor", "state": "begin"}))
    windows = step_windows(ops)
    assert [(w.step, w.ok) for w in windows] == [(STEP, True), ("5. monitor", None)]
    assert windows[1].end == max(op.time for op in ops) and windows[1].error == "the step never ended"
    assert runbook_steps(ops)["steps"][1]["failures"] == 0


def test_a_step_naming_its_own_row_is_judged_by_that_rows_rto() -> None:
    """A host's return that brings back a worker it held: 12 s of failures are over the
    scenario's 10 s row, within the worker-failure row the step names."""
    ops = with_step(30.0, 42.0)
    for op in ops:
        if op.f == "runbook-step" and op.value["state"] == "begin":
            op.value.update(row="worker-failure", rto_s=load_targets().row("worker-failure").rto_s)
    result = judge(ops)
    (step,) = result["runbook_steps"]
    assert step["row"] == "worker-failure" and step["rto_s"] == 300
    assert not [f for f in result["findings"] if f["code"] == "runbook-step-outage"], result["reasons"]
    notes = [f["text"] for f in result["findings"] if f["code"] == "runbook-step-failures"]
    assert notes and "within worker-failure's 300" in notes[0], notes
    assert result["verdict"] in ("pass", "marginal"), result["reasons"]
