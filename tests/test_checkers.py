"""Checkers over synthetic histories: RTO, RPO, availability, faults, composition."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from harness.checkers import (
    UNKNOWN,
    availability,
    check_safe,
    compose,
    counts,
    faults,
    merge_valid,
    rpo,
    rto,
)
from harness.history import Op


class H:
    """Builds a history; ops are sorted by time and numbered on ``ops()``."""

    def __init__(self) -> None:
        self._ops: list[tuple[float, int, Op]] = []
        self._process = 0

    def _add(self, t: float, op: Op) -> None:
        self._ops.append((t, len(self._ops), op))

    def op(
        self, f: str, outcome: str, start: float, end: float, value: Any = None, done: Any = None
    ) -> H:
        """One client op on a fresh process: invoke at ``start``, completion at ``end``."""
        self._process += 1
        p = self._process
        self._add(start, Op(0, start, p, "invoke", f, value))
        self._add(end, Op(0, end, p, outcome, f, value if done is None else done))  # type: ignore[arg-type]
        return self

    def write(self, key: int, outcome: str, end: float, start: float | None = None) -> H:
        return self.op("write", outcome, end - 0.01 if start is None else start, end, key)

    def read(self, outcome: str, end: float) -> H:
        return self.op("read", outcome, end - 0.01, end)

    def invoke_write(self, key: int, start: float) -> H:
        """A write invoked at ``start`` that never completes (open at the end)."""
        self._process += 1
        self._add(start, Op(0, start, self._process, "invoke", "write", key))
        return self

    def read_all(self, keys: list[int], end: float, start: float | None = None) -> H:
        return self.op("read-all", "ok", end - 0.5 if start is None else start, end, None, keys)

    def fault(self, f: str, t: float, target: str = "pg1") -> H:
        self._add(t, Op(0, t, "nemesis", "info", f, {"target": target}))
        return self

    def heal(self, t: float, target: str | None = "pg1", fault: int | None = None) -> H:
        value: dict[str, Any] = {} if target is None else {"target": target}
        if fault is not None:
            value["fault"] = fault
        self._add(t, Op(0, t, "nemesis", "info", "heal", value))
        return self

    def ops(self) -> list[Op]:
        out = [op for _, _, op in sorted(self._ops, key=lambda x: (x[0], x[1]))]
        for i, op in enumerate(out):
            op.index = i
        return out


grid = st.integers(min_value=0, max_value=4000).map(lambda n: n / 100)


@st.composite
def outages(draw: st.DrawFn) -> tuple[float, float, list[float]]:
    """A fault at t0, writes failing in (t0, t1], ok otherwise; at least one ok after t1."""
    t0 = draw(st.integers(min_value=100, max_value=5000)) / 100
    t1 = t0 + draw(st.integers(min_value=1, max_value=3000)) / 100
    times = draw(st.lists(grid.map(lambda x: x * 3), min_size=1, max_size=60, unique=True))
    after = t1 + draw(st.integers(min_value=1, max_value=500)) / 100
    return t0, t1, sorted({*times, after})


def _outage_history(t0: float, t1: float, times: list[float], f: str = "write") -> H:
    h = H().fault("kill", t0)
    for k, t in enumerate(times):
        outcome = "fail" if t0 < t <= t1 else "ok"
        if f == "write":
            h.write(k, outcome, t)
        else:
            h.read(outcome, t)
    return h


def _probe_history(t0: float, t1: float, period: float, f: str = "write", end: float | None = None,
                   took: float = 0.005) -> list[Op]:
    """One sequential client issuing ``f`` every ``period`` from 0 to ``end``; a fault at t0;
    ops completing in (t0, t1] fail."""
    ops: list[Op] = []
    end = t1 + 3.0 if end is None else end
    step, fault_done = 0, False
    while (t := round(step * period, 9)) < end:
        if not fault_done and t >= t0:
            ops.append(Op(len(ops), t0, "nemesis", "info", "kill", {"target": "pg1"}))
            fault_done = True
        done = t + took
        ops.append(Op(len(ops), t, 1, "invoke", f, step))
        ops.append(Op(len(ops), done, 1, "fail" if t0 < done <= t1 else "ok", f, step))
        step += 1
    return ops


@given(st.integers(min_value=50, max_value=2000), st.integers(min_value=1, max_value=1500),
       st.sampled_from([0.02, 0.04, 0.1, 0.5]), st.sampled_from(["write", "read"]))
def test_known_outage_gives_rto(t0_cs: int, outage_cs: int, period: float, f: str) -> None:
    """A probe at any period: RTO is the first ok completion after the outage."""
    t0, t1 = t0_cs / 100, (t0_cs + outage_cs) / 100
    ops = _probe_history(t0, t1, period, f)
    result = rto(ops)
    expected = min(op.time for op in ops if op.f == f and op.type == "ok" and op.time > t1) - t0
    assert result["valid"] is True
    assert result["rto_s"][f] == pytest.approx(expected, abs=1e-9)
    assert result["faults"][0]["rto_s"][f] == pytest.approx(expected, abs=1e-9)
    assert result["gap_s"][f] == pytest.approx(max(0.25, 5 * period))


@given(outages(), st.randoms(use_true_random=False), st.integers(min_value=0, max_value=40))
def test_unrelated_ops_change_nothing(
    case: tuple[float, float, list[float]], rnd: random.Random, n_noise: int
) -> None:
    t0, t1, times = case
    base = _outage_history(t0, t1, times)
    noisy = _outage_history(t0, t1, times)
    for _ in range(n_noise):
        end = rnd.uniform(0, times[-1] + 5)
        outcome = rnd.choice(["ok", "fail", "info"])
        noisy.op(rnd.choice(["vector-search", "health"]), outcome, end - 0.2, end, None)
    for h in (base, noisy):
        h.read_all(list(range(len(times))), times[-1] + 10)
    a, b = base.ops(), noisy.ops()
    assert rto(a)["rto_s"] == rto(b)["rto_s"]
    assert [x["rto_s"] for x in rto(a)["faults"]] == [x["rto_s"] for x in rto(b)["faults"]]
    ra, rb = rpo(a), rpo(b)
    assert {k: ra[k] for k in ("valid", "lost", "window_s", "unknown", "unexpected")} == {
        k: rb[k] for k in ("valid", "lost", "window_s", "unknown", "unexpected")
    }
    assert availability(a)["windows"] == availability(b)["windows"]


def test_flapping_ok_does_not_end_the_outage() -> None:
    h = H().fault("kill", 10.0)
    h.write(1, "fail", 11.0).write(2, "ok", 12.0).write(3, "info", 12.5)
    h.write(4, "ok", 14.0).write(5, "ok", 14.2)
    assert rto(h.ops())["rto_s"]["write"] == pytest.approx(4.0)


def test_stable_window_is_a_parameter() -> None:
    h = H().fault("kill", 10.0)
    h.write(1, "fail", 11.0).write(2, "ok", 12.0).write(3, "fail", 12.5).write(4, "ok", 14.0)
    h.write(5, "ok", 14.2)  # oks continue to the end of the history
    ops = h.ops()
    # sparse ops, seconds apart: a gap threshold above their spacing
    assert rto(ops, stable_s=0.4, gap_s=5.0)["rto_s"]["write"] == pytest.approx(2.0)
    assert rto(ops, stable_s=0.5, gap_s=5.0)["rto_s"]["write"] == pytest.approx(4.0)
    assert rto(ops)["rto_s"]["write"] == pytest.approx(4.0)


def test_ops_before_or_at_the_fault_do_not_count() -> None:
    h = H().write(1, "ok", 5.0).fault("kill", 5.0).write(2, "fail", 6.0).write(3, "ok", 9.0)
    h.write(4, "ok", 9.1)
    assert rto(h.ops())["rto_s"]["write"] == pytest.approx(4.0)


def test_unrecovered_fault_is_invalid_and_null() -> None:
    h = H().read("ok", 1.0).write(1, "ok", 1.0).fault("kill", 2.0)
    h.write(2, "fail", 3.0).read("ok", 3.0).read("ok", 3.1)
    result = rto(h.ops())
    assert result["valid"] is False
    assert result["rto_s"] == {"write": None, "read": pytest.approx(1.0)}
    assert result["unrecovered"] == [{"fault": result["faults"][0]["index"], "f": "write"}]


def test_a_path_that_never_completes_after_the_fault_is_unrecovered() -> None:
    """No evidence of recovery is not a pass: reads before the fault, none after."""
    h = H().read("ok", 1.0).fault("kill", 2.0).write(1, "fail", 3.0).write(2, "ok", 4.0)
    h.write(3, "ok", 4.1)
    result = rto(h.ops())
    assert result["valid"] is False
    assert result["faults"][0]["rto_s"]["read"] is None
    assert result["faults"][0]["unobserved"] == []
    assert {"fault": result["faults"][0]["index"], "f": "read"} in result["unrecovered"]


def test_a_path_absent_from_the_history_is_unobserved_not_judged() -> None:
    h = H().write(0, "ok", 1.0).fault("kill", 2.0).write(1, "fail", 3.0).write(2, "ok", 4.0)
    h.write(3, "ok", 4.1)
    result = rto(h.ops())
    assert result["valid"] is True
    assert result["faults"][0]["unobserved"] == ["read"]
    assert result["rto_s"]["read"] is None


def test_a_commit_hanging_from_the_fault_to_the_end_is_unrecovered() -> None:
    """The only writer's COMMIT hangs from the kill to the end, reads keep working."""
    h = H().write(0, "ok", 0.5)
    for i in range(40):
        h.read("ok", 1.0 + i * 0.1)
    h.fault("kill", 2.0).invoke_write(1, 2.05)
    result = rto(h.ops())
    assert result["valid"] is False
    assert result["faults"][0]["rto_s"]["write"] is None
    assert result["faults"][0]["rto_s"]["read"] is not None


def test_worst_rto_over_faults() -> None:
    h = H().fault("kill", 10.0).write(1, "fail", 11.0).write(2, "ok", 13.0)
    h.fault("pause", 20.0).write(3, "fail", 21.0).write(4, "ok", 27.0).write(5, "ok", 27.1)
    result = rto(h.ops(), gap_s=20.0)  # ops seconds apart: their spacing is not a gap here
    assert [x["rto_s"]["write"] for x in result["faults"]] == [
        pytest.approx(3.0),
        pytest.approx(7.0),
    ]
    assert result["rto_s"]["write"] == pytest.approx(7.0)


def test_faults_and_heals() -> None:
    h = H().fault("kill", 1.0, "pg1").fault("partition", 2.0, "pg2").fault("pause", 3.0, "pg1")
    h.heal(4.0, "pg1").heal(5.0, "pg2")
    found = faults(h.ops())
    assert [(x.f, x.target, x.healed_at) for x in found] == [
        ("kill", "pg1", 4.0),
        ("partition", "pg2", 5.0),
        ("pause", "pg1", None),
    ]


def test_heal_by_fault_reference_and_heal_all() -> None:
    h = H().fault("kill", 1.0, "pg1").fault("pause", 2.0, "pg1").fault("latency", 3.0, "pg3")
    ops = h.ops()
    pause = ops[1].index
    h.heal(4.0, "pg1", fault=pause).heal(5.0, None)
    found = faults(h.ops())
    assert [(x.f, x.healed_at) for x in found] == [("kill", 5.0), ("pause", 4.0), ("latency", 5.0)]


def test_nemesis_ops_other_than_info_are_not_faults() -> None:
    ops = [
        Op(0, 1.0, "nemesis", "invoke", "kill", {"target": "pg1"}),
        Op(1, 1.1, "nemesis", "info", "kill", {"target": "pg1"}),
        Op(2, 1.2, "nemesis", "fail", "pause", {"target": "pg1"}),
    ]
    assert [x.index for x in faults(ops)] == [1]


# --- RPO ---------------------------------------------------------------------------------------

outcomes = st.sampled_from(["ok", "fail", "info"])


@given(
    st.lists(st.tuples(outcomes, st.booleans()), min_size=1, max_size=60),
    st.integers(min_value=0, max_value=10**6),
)
def test_rpo_classifies_every_key(plan: list[tuple[str, bool]], seed: int) -> None:
    """ok+missing -> lost; info -> unknown, never lost; fail+present -> unexpected."""
    rnd = random.Random(seed)
    h = H().fault("kill", 30.0)
    present: list[int] = []
    for key, (outcome, in_read) in enumerate(plan):
        h.write(key, outcome, rnd.uniform(1.0, 60.0))
        if in_read:
            present.append(key)
    stranger = len(plan) + 7
    h.read_all([*present, stranger], 100.0)
    result = rpo(h.ops())

    lost = [k for k, (o, r) in enumerate(plan) if o == "ok" and not r]
    unexpected = [k for k, (o, r) in enumerate(plan) if o == "fail" and r] + [stranger]
    infos = [k for k, (o, _) in enumerate(plan) if o == "info"]
    assert result["lost_keys"] == lost
    assert result["lost"] == len(lost)
    assert not set(result["lost_keys"]) & set(infos)
    assert result["unknown"] == len(infos)
    assert result["unexpected_keys"] == sorted(unexpected)
    assert result["valid"] is False  # the stranger is always unexpected


@given(
    st.lists(st.integers(min_value=1, max_value=10_000).map(lambda n: n / 100), min_size=1),
    st.integers(min_value=1, max_value=10_000).map(lambda n: n / 100),
)
def test_lost_window(lost_acks: list[float], fault_t: float) -> None:
    h = H().fault("kill", fault_t).fault("pause", fault_t + 5)
    for key, t in enumerate(lost_acks):
        h.write(key, "ok", t)
    h.write(10**6, "ok", 0.5)
    h.read_all([10**6], 200.0)
    result = rpo(h.ops())
    assert result["lost"] == len(lost_acks)
    assert result["window_s"] == pytest.approx(max(0.0, fault_t - min(lost_acks)))
    assert result["valid"] is False


def test_lost_window_without_fault_is_the_lost_span() -> None:
    h = H().write(1, "ok", 2.0).write(2, "ok", 5.0).write(3, "ok", 9.5).read_all([2], 20.0)
    result = rpo(h.ops())
    assert result["lost_keys"] == [1, 3]
    assert result["window_s"] == pytest.approx(7.5)


def test_nothing_lost_is_valid_with_zero_window() -> None:
    h = H().write(1, "ok", 1.0).fault("kill", 2.0).write(2, "info", 3.0).read_all([1], 9.0)
    result = rpo(h.ops())
    assert result["valid"] is True
    assert (result["lost"], result["window_s"], result["unknown"]) == (0, 0.0, 1)


def test_no_read_all_is_unknown() -> None:
    h = H().write(1, "ok", 1.0)
    h.op("read-all", "fail", 2.0, 3.0)
    result = rpo(h.ops())
    assert result["valid"] == UNKNOWN
    assert result["lost"] is None
    assert "read-all" in result["error"]


def test_last_ok_read_all_is_the_final_read() -> None:
    h = H().write(1, "ok", 1.0).read_all([], 2.0).write(2, "ok", 3.0).read_all([1, 2], 9.0)
    assert rpo(h.ops())["lost"] == 0


def test_write_acked_during_the_final_read_is_late_not_lost() -> None:
    h = H().write(1, "ok", 1.0).read_all([1], 10.0, start=5.0).write(2, "ok", 7.0)
    result = rpo(h.ops())
    assert (result["lost"], result["late_keys"]) == (0, [2])


def test_pending_write_is_unknown_and_may_be_present() -> None:
    ops = [
        Op(0, 1.0, 1, "invoke", "write", 5),
        Op(1, 2.0, 2, "invoke", "read-all", None),
        Op(2, 3.0, 2, "ok", "read-all", [5]),
    ]
    result = rpo(ops)
    assert (result["valid"], result["unknown"], result["unexpected"]) == (True, 1, 0)


def test_completion_without_value_takes_the_invoked_key() -> None:
    ops = [
        Op(0, 1.0, 1, "invoke", "write", 5),
        Op(1, 1.5, 1, "ok", "write", None),
        Op(2, 3.0, 2, "ok", "read-all", []),  # no invoke: tolerated
    ]
    assert rpo(ops)["lost_keys"] == [5]


# --- availability ------------------------------------------------------------------------------


def test_counts_and_windows() -> None:
    h = H().write(1, "ok", 1.0).write(2, "fail", 2.0).write(3, "info", 3.0).write(4, "ok", 5.0)
    h.write(5, "fail", 7.0).read("ok", 7.5).op("vector-search", "ok", 7.0, 8.0)
    h.fault("kill", 1.5)
    result = availability(h.ops())
    assert result["valid"] is True
    assert result["counts"] == {
        "write": {"ok": 2, "fail": 2, "info": 1},
        "read": {"ok": 1, "fail": 0, "info": 0},
        "vector-search": {"ok": 1, "fail": 0, "info": 0},
    }
    assert result["windows"]["write"] == [
        {"start": 2.0, "end": 5.0, "duration_s": pytest.approx(3.0)},
        {"start": 7.0, "end": None, "duration_s": pytest.approx(1.0), "open": True},
    ]
    assert result["longest"]["write"]["start"] == 2.0
    assert result["windows"]["read"] == [] and result["longest"]["read"] is None
    assert counts(h.ops()) == result["counts"]


@given(outages())
def test_outage_is_one_window(case: tuple[float, float, list[float]]) -> None:
    t0, t1, times = case
    failing = [t for t in times if t0 < t <= t1]
    assume(failing)
    windows = availability(_outage_history(t0, t1, times).ops())["windows"]["write"]
    assert windows == [
        {
            "start": min(failing),
            "end": min(t for t in times if t > t1),
            "duration_s": pytest.approx(min(t for t in times if t > t1) - min(failing)),
        }
    ]


# --- composition -------------------------------------------------------------------------------

validities = st.sampled_from([True, False, UNKNOWN])


@given(st.lists(validities))
def test_merge_valid(vs: list[Any]) -> None:
    expected = False if False in vs else (UNKNOWN if UNKNOWN in vs else True)
    assert merge_valid(vs) == expected


@given(st.dictionaries(st.text(min_size=1, max_size=5).filter(lambda s: s != "valid"), validities,
                       max_size=5))
def test_compose(vs: dict[str, Any]) -> None:
    checkers = {name: (lambda ops, v=v: {"valid": v}) for name, v in vs.items()}
    result = compose(checkers, [])
    assert result["valid"] == merge_valid(vs.values())
    assert {k: result[k]["valid"] for k in vs} == vs


@given(st.sampled_from([ValueError, KeyError, ZeroDivisionError, RuntimeError]), st.text())
def test_check_safe_turns_a_crash_into_unknown(exc: type[Exception], msg: str) -> None:
    def broken(ops: Any) -> dict[str, Any]:
        raise exc(msg)

    result = check_safe(broken, [])
    assert result["valid"] == UNKNOWN
    assert result["error"].startswith(exc.__name__)
    assert compose({"ok": lambda ops: {"valid": True}, "broken": broken}, [])["valid"] == UNKNOWN


def test_check_safe_rejects_a_result_without_validity() -> None:
    assert check_safe(lambda ops: {"figures": 1}, [])["valid"] == UNKNOWN
    assert check_safe(lambda ops: {"valid": "yes"}, [])["valid"] == UNKNOWN


def test_check_safe_passes_options_and_results_through() -> None:
    h = H().fault("kill", 1.0).write(1, "fail", 2.0).write(2, "ok", 2.5).write(3, "fail", 3.0)
    h.write(4, "ok", 6.0).write(5, "ok", 6.1)
    assert check_safe(rto, h.ops(), stable_s=0.1, gap_s=5.0)["rto_s"]["write"] == pytest.approx(1.5)


def test_rto_ignores_an_ok_followed_by_an_op_that_hangs_then_fails():
    """A sequential client: ok right after the fault, then a read that hangs 5 s
    and fails; the stretch after the first ok is not stable."""
    from harness.checkers import rto as rto_checker
    from harness.history import Op

    ops = [
        Op(0, 10.0, "nemesis", "info", "kill", {"target": "coordinator-1"}),
        Op(1, 10.0, 1, "invoke", "read", 1),
        Op(2, 10.01, 1, "ok", "read", 1),
        Op(3, 10.05, 1, "invoke", "read", 1),
        Op(4, 15.05, 1, "fail", "read", 1),
        Op(5, 20.0, 1, "invoke", "read", 1),
        Op(6, 20.02, 1, "ok", "read", 1),
        Op(7, 20.05, 1, "invoke", "read", 1),
        Op(8, 20.06, 1, "ok", "read", 1),
    ]
    result = rto_checker(ops, fs=("read",))
    assert abs(result["rto_s"]["read"] - 10.02) < 1e-9


def test_rto_stretch_must_hold_until_the_heal():
    """A graceful stop: writes keep working 1.5 s, then fail 4 s, then recover;
    the early ok does not count as recovery because the outage came before the heal."""
    from harness.checkers import rto as rto_checker
    from harness.history import Op

    ops = [Op(0, 10.0, "nemesis", "info", "stop", {"target": "coordinator-1"})]
    t, i = 10.0, 1
    while t < 20.0:
        outcome = "fail" if 11.5 <= t < 15.5 else "ok"
        ops += [Op(i, t, 1, "invoke", "write", i), Op(i + 1, t + 0.01, 1, outcome, "write", i)]
        t, i = t + 0.1, i + 2
    ops.append(Op(i, 20.0, "nemesis", "info", "heal", {"target": "coordinator-1", "fault": 0}))
    result = rto_checker(ops, fs=("write",))
    assert 5.4 < result["rto_s"]["write"] < 5.7, result["rto_s"]


def test_rto_counts_a_stall_as_an_outage():
    """No op fails, but one write hangs 4.5 s in the pooler: recovery is its completion."""
    from harness.checkers import rto as rto_checker
    from harness.history import Op

    ops = [
        Op(0, 10.0, "nemesis", "info", "stop", {"target": "coordinator-1"}),
        Op(1, 10.01, 1, "invoke", "write", 1), Op(2, 10.02, 1, "ok", "write", 1),
        Op(3, 10.06, 1, "invoke", "write", 2), Op(4, 14.56, 1, "ok", "write", 2),
        Op(5, 14.60, 1, "invoke", "write", 3), Op(6, 14.61, 1, "ok", "write", 3),
        Op(7, 18.0, "nemesis", "info", "heal", {"target": "coordinator-1", "fault": 0}),
    ]
    assert abs(rto_checker(ops, fs=("write",))["rto_s"]["write"] - 4.56) < 1e-6
    # the same history with fast ops only (no stall) recovers at once
    fast = [op for op in ops if op.index not in (3, 4)]
    assert rto_checker(fast, fs=("write",))["rto_s"]["write"] < 0.1


# --- availability at probe resolution ------------------------------------------------------------


def _writer(ops: list[Op], start: float, end: float, period: float = 0.02, process: int = 1,
            took: float = 0.004) -> None:
    """A sequential writer: one write every ``period`` in [start, end), each taking ``took``."""
    t = start
    while t < end:
        ops.append(Op(0, t, process, "invoke", "write", None))
        ops.append(Op(0, t + took, process, "ok", "write", None))
        t = round(t + period, 9)


def _numbered(ops: list[Op]) -> list[Op]:
    ops.sort(key=lambda op: op.time)
    for i, op in enumerate(ops):
        op.index = i
    return ops


def test_a_silent_gap_with_a_write_in_flight_is_unavailability() -> None:
    """PostgreSQL crash on the leader, as an independent 50 Hz client saw it: writes complete
    at +0.036, +0.05, +0.07 s, then one hangs 1.1 s (no error) and the stream resumes. The old
    checker said 0.036 s; the write in flight with no ok for 1.1 s is an outage."""
    ops: list[Op] = [Op(0, 10.0, "nemesis", "info", "pg-kill", {"target": "coordinator-1"})]
    _writer(ops, 0.0, 10.0)
    for start, done in ((10.02, 10.036), (10.04, 10.05), (10.06, 10.07)):
        ops += [Op(0, start, 1, "invoke", "write", None), Op(0, done, 1, "ok", "write", None)]
    ops += [Op(0, 10.08, 1, "invoke", "write", None), Op(0, 11.17, 1, "ok", "write", None)]
    _writer(ops, 11.18, 15.0)
    ops = _numbered(ops)
    result = rto(ops, fs=("write",))
    assert result["valid"] is True
    assert result["gap_s"]["write"] == pytest.approx(0.25)  # 50 Hz: the 0.25 s floor
    assert result["rto_s"]["write"] == pytest.approx(1.17)
    assert result["rto_s"]["write"] >= 1.1
    (window,) = availability(ops, fs=("write",))["windows"]["write"]
    assert (window["start"], window["end"]) == (pytest.approx(10.08), pytest.approx(11.17))
    # the old resolution, on request: a 2 s threshold does not see the 1.1 s stall
    assert rto(ops, fs=("write",), gap_s=2.0)["rto_s"]["write"] == pytest.approx(0.036)


def test_a_gap_below_the_threshold_is_not_an_outage() -> None:
    ops: list[Op] = [Op(0, 10.0, "nemesis", "info", "pg-kill", {"target": "coordinator-1"})]
    _writer(ops, 0.0, 10.01)
    ops += [Op(0, 10.02, 1, "invoke", "write", None), Op(0, 10.22, 1, "ok", "write", None)]
    _writer(ops, 10.23, 13.0)
    ops = _numbered(ops)
    assert rto(ops, fs=("write",))["rto_s"]["write"] == pytest.approx(0.004, abs=1e-9)
    assert availability(ops, fs=("write",))["windows"]["write"] == []


def test_an_ok_followed_by_paused_traffic_is_not_stable() -> None:
    """Data corruption: traffic paused at the fault; one write completes 5 ms after it; no op
    for 30 s (restore), then traffic resumes. RTO runs to the resumed stable stretch, not 0."""
    for heal in (39.0, None):
        ops: list[Op] = [Op(0, 10.0, "nemesis", "info", "corruption", {"target": "worker-1"})]
        _writer(ops, 0.0, 9.99, period=0.04)
        ops += [Op(0, 9.999, 1, "invoke", "write", None), Op(0, 10.005, 1, "ok", "write", None)]
        if heal is not None:
            ops.append(Op(0, heal, "nemesis", "info", "heal", {"target": "worker-1", "fault": 0}))
        _writer(ops, 40.0, 45.0, period=0.04, process=11)
        ops = _numbered(ops)
        result = rto(ops, fs=("write",))
        assert result["rto_s"]["write"] == pytest.approx(30.004), heal
        assert result["valid"] is True


def test_a_lone_ok_at_the_end_is_unconfirmed_not_recovered() -> None:
    ops: list[Op] = [Op(0, 10.0, "nemesis", "info", "kill", {"target": "coordinator-1"})]
    _writer(ops, 0.0, 10.0)
    ops += [Op(0, 10.5, 1, "invoke", "write", None), Op(0, 12.5, 1, "fail", "write", None),
            Op(0, 12.6, 1, "invoke", "write", None), Op(0, 12.61, 1, "ok", "write", None)]
    result = rto(_numbered(ops), fs=("write",))
    assert result["valid"] == UNKNOWN
    assert result["rto_s"]["write"] is None
    assert result["faults"][0]["unconfirmed"] == ["write"]
    fault = result["faults"][0]["index"]
    assert result["unrecovered"] == [] and result["unconfirmed"] == [{"fault": fault, "f": "write"}]


def test_probe_period_and_gap_come_from_the_history_or_the_caller() -> None:
    ops = _probe_history(5.0, 6.0, 0.1)
    assert rto(ops)["probe_period_s"]["write"] == pytest.approx(0.1)
    assert rto(ops)["gap_s"]["write"] == pytest.approx(0.5)
    assert rto(ops, probe_period_s=0.04)["gap_s"]["write"] == pytest.approx(0.25)
    assert rto(ops, gap_s=1.5)["gap_s"]["write"] == 1.5
    assert availability(ops, gap_s=1.5)["gap_s"]["write"] == 1.5


def test_an_invoke_that_never_completes_is_in_flight_until_the_last_completion() -> None:
    ops: list[Op] = [Op(0, 10.0, "nemesis", "info", "kill", {"target": "coordinator-1"})]
    _writer(ops, 0.0, 10.0, process=1)
    ops.append(Op(0, 10.01, 1, "invoke", "write", None))  # hangs for ever: never completes
    _writer(ops, 0.0, 10.0, process=2)
    ops += [Op(0, 10.01, 2, "invoke", "write", None), Op(0, 12.0, 2, "ok", "write", None)]
    _writer(ops, 12.01, 15.0, process=2)
    result = rto(_numbered(ops), fs=("write",))
    assert result["rto_s"]["write"] == pytest.approx(2.0)


def test_observations_are_neither_faults_nor_load() -> None:
    ops = _probe_history(5.0, 6.0, 0.1)
    plain = rto(ops)
    (fault,) = [op.index for op in ops if op.process == "nemesis"]
    observed = [*ops, Op(len(ops), 6.5, "observer", "ok", "fault-effect",
                         {"fault": fault, "target": "pg1", "evidence": "gone"}, "pg1")]
    assert [x.index for x in faults(observed)] == [fault]
    assert rto(observed)["rto_s"] == plain["rto_s"]
    assert "fault-effect" not in counts(observed)
    assert availability(observed)["windows"] == availability(ops)["windows"]
    observed[-1] = Op(len(ops), 6.5, "observer", "ok", "write", {"fault": 0}, "pg1")
    assert rto(observed)["rto_s"] == plain["rto_s"]
