"""The harness's write RTO agrees with an independent client's, live.

Beside three coordinator scenarios run with ScenarioRun (PostgreSQL crash on
the leader with Patroni alive, graceful stop of the leader, hard kill of the
leader), a plain psycopg writer — its own thread and connection through
PgBouncer's port published on 127.0.0.1, not the harness's Client or Probe —
writes at 50 Hz, every write bounded. Its write RTO, computed with the same
definition (the RTO checker over its own ops, with the scenario's fault and
heal), must be within 0.25 s of the harness's, plus the spread with which the
pooler served the clients queued across the outage (measured in the same run,
at most 1 s): the harness's RTO is that of its last client served. A larger difference is
accepted only when every silent gap that makes one RTO later came while the other client
was slowed too (a write of its own in flight across it that took half the gap or more, 0.125 s,
against its usual 10-20 ms):
after a failover commits stall for 0.2-0.5 s now and then, and a stall just over the gap
threshold in one client and just under it in the other is sampling; a failure, or a first
recovery later than the tolerance, is never accepted. The stack is the session's
(a reference stack like any other: no bring-up of its own); the writer's table is dropped at the end.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness.checkers import rto
from harness.history import Op, read_history, write_history
from harness.scenario import RunOptions, ScenarioRun, verdict_message
from harness.stack import Stack
from harness.stack.steady_state import check_leader
from harness.stack.topology import discover

pytestmark = pytest.mark.docker

AGREEMENT_S = 0.25
# clients queued in the pooler across the outage are served one server login after another;
# a wider spread than this would mean the pooler (or the harness) holds clients back
QUEUE_SPREAD_MAX_S = 1.0
PERIOD_S = 0.018  # 50 Hz and a little over: a slow write now and then costs a period
TABLE = "public.rto_agreement_writes"
EVIDENCE = Path(__file__).resolve().parents[1] / "reports" / "rto-agreement"


class IndependentWriter:
    """Inserts one row every ``period_s`` on its own connection; records (invoked, completed, outcome).

    Each write is a transaction with ``SET LOCAL statement_timeout`` (INSERT and
    COMMIT bounded), connects with ``connect_timeout=1``, and is cancelled from
    a watchdog after ``hard_s``; a COMMIT whose synchronous-standby wait was
    cancelled (a WARNING, not an error) is recorded as ``info``. The loop stops
    itself after ``max_ops`` writes or ``max_s`` seconds.
    """

    def __init__(self, dsn: str, run_start: float, *, period_s: float = PERIOD_S,
                 timeout_ms: int = 2000, hard_s: float = 5.0, max_ops: int = 30_000,
                 max_s: float = 300.0) -> None:
        self.dsn, self.run_start, self.period_s = dsn, run_start, period_s
        self.timeout_ms, self.hard_s, self.max_ops, self.max_s = timeout_ms, hard_s, max_ops, max_s
        self.records: list[tuple[float, float, str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="independent-writer", daemon=True)
        self._key = int(time.time() * 1000) * 100_000

    def start(self) -> IndependentWriter:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} "
                         "(k bigint PRIMARY KEY, at timestamptz DEFAULT now())")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.hard_s + 15)

    def _now(self) -> float:
        return time.monotonic() - self.run_start

    def _write(self, conn_box: list[psycopg.Connection | None]) -> tuple[str, str]:
        warned: list[str] = []
        conn = conn_box[0]
        if conn is None or conn.closed:
            conn = conn_box[0] = psycopg.connect(self.dsn, autocommit=True, connect_timeout=1)
            conn.add_notice_handler(lambda d: warned.append(d.message_primary or ""))
        watchdog = threading.Timer(self.hard_s, conn.cancel)
        watchdog.start()
        try:  # one round trip (simple query): 50 Hz needs a write well under 20 ms
            conn.execute(f"BEGIN; SET LOCAL statement_timeout = {int(self.timeout_ms)}; "
                         f"INSERT INTO {TABLE} (k) VALUES ({int(self._key)}); COMMIT".encode())
        finally:
            watchdog.cancel()
        if any("synchronous replication" in w for w in warned):
            return "info", "commit wait for the synchronous standby cancelled"
        return "ok", ""

    def _loop(self) -> None:
        conn_box: list[psycopg.Connection | None] = [None]
        deadline = time.monotonic() + self.max_s
        next_at = time.monotonic()
        try:
            while not self._stop.is_set() and len(self.records) < self.max_ops \
                    and time.monotonic() < deadline:
                self._key += 1
                invoked = self._now()
                try:
                    outcome, error = self._write(conn_box)
                except psycopg.Error as exc:
                    outcome, error = "fail", f"{type(exc).__name__}: {str(exc).strip()[:120]}"
                    if conn_box[0] is not None:
                        conn_box[0].close()  # a failed multi-statement query leaves no open transaction
                    conn_box[0] = None
                self.records.append((invoked, self._now(), outcome, error))
                next_at += self.period_s
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_at = time.monotonic()
        finally:
            if conn_box[0] is not None:
                conn_box[0].close()

    def rate_hz(self, until: float) -> tuple[float, float]:
        """(mean, median-interval) writes per second before ``until`` (the fault): the writer's
        resolution, and its pace when writes are fast (robust to a few slow ones on a busy machine)."""
        starts = [r[0] for r in self.records if r[0] < until]
        if len(starts) < 2:
            return 0.0, 0.0
        gaps = sorted(b - a for a, b in zip(starts, starts[1:], strict=False))
        return (len(starts) - 1) / (starts[-1] - starts[0]), 1 / gaps[len(gaps) // 2]

    def ops(self, fault: Op, heal: Op | None) -> list[Op]:
        """The writer's history with the scenario's fault (and heal), on the run's timeline."""
        rows: list[tuple[float, Op]] = [(fault.time, Op(0, fault.time, "nemesis", "info", fault.f, fault.value))]
        if heal is not None:
            rows.append((heal.time, Op(0, heal.time, "nemesis", "info", "heal", {**heal.value, "fault": 0})))
        for n, (invoked, done, outcome, error) in enumerate(self.records):
            rows.append((invoked, Op(0, invoked, 1, "invoke", "write", n)))
            rows.append((done, Op(0, done, 1, outcome, "write", n, error=error or None)))  # type: ignore[arg-type]
        rows.sort(key=lambda r: r[0])
        ops = [op for _, op in rows]
        for i, op in enumerate(ops):
            op.index = i
        fault_pos = next(i for i, op in enumerate(ops) if op.process == "nemesis" and op.f != "heal")
        for op in ops:
            if op.f == "heal":
                op.value["fault"] = fault_pos
        return ops


def _pg_kill(run: ScenarioRun) -> Any:
    fault = run.nemesis.inject("pg-kill", "primary")
    run.sleep(1)
    run.wait_until("a single running leader again",
                   lambda: check_leader(discover(run.stack)).ok, timeout_s=60)
    return fault


def _graceful_stop(run: ScenarioRun) -> Any:
    fault = run.nemesis.inject("stop", "primary")
    run.wait_for_new_leader(fault.target, timeout_s=60)
    return fault


def _hard_kill(run: ScenarioRun) -> Any:
    fault = run.nemesis.inject("kill", "primary")
    run.wait_for_new_leader(fault.target, timeout_s=60)
    return fault


SCENARIOS = {"pg-kill": _pg_kill, "stop": _graceful_stop, "kill": _hard_kill}


def _fault_and_heal(history: str, f: str) -> tuple[Op, Op | None, int]:
    ops = read_history(history)
    fault = next(op for op in ops if op.process == "nemesis" and op.type == "info" and op.f == f)
    heals = [op for op in ops if op.process == "nemesis" and op.f == "heal" and op.time > fault.time
             and isinstance(op.value, dict)]
    heal = next((op for op in heals if op.value.get("fault") == fault.index), None) or next(
        (op for op in heals if op.value.get("target") in (fault.value.get("target"), None, "all", "*")), None)
    return fault, heal, fault.index


def queued_spread(harness_ops: list[Op], independent_ops: list[Op], first_served: float,
                  min_wait_s: float = AGREEMENT_S) -> float:
    """How far apart PgBouncer served the clients whose op waited across the outage.

    An op queued in the pooler while no leader exists raises nothing; once the new
    leader is reachable the pooler serves the queued clients in turn, a server login
    each. Per client process (the harness's probes and load, the independent writer):
    the completion of its ok that was waiting at ``first_served`` (the earliest recovery
    of the two measures) and had waited at least ``min_wait_s``; the spread is the
    latest minus the earliest (0 with fewer than two).
    Two clients honestly differ by up to that much, whichever one measures."""
    served: list[float] = []
    for tag, ops in (("harness", harness_ops), ("independent", independent_ops)):
        invoked: dict[Any, float] = {}
        first: dict[Any, float] = {}
        for op in ops:
            if op.f not in ("write", "read") or not isinstance(op.process, int) or op.process == 0:
                continue
            key = (tag, op.process)
            if op.type == "invoke":
                invoked[key] = op.time
            elif op.type == "ok" and key not in first \
                    and invoked.get(key, op.time) < first_served <= op.time + 1e-6 \
                    and op.time - invoked.get(key, op.time) >= min_wait_s:
                first[key] = op.time
        served += first.values()
    return max(served) - min(served) if len(served) > 1 else 0.0


def _intervals(ops: list[Op], f: str = "write") -> list[tuple[float, float, str]]:
    """(invoked, completed, type) of every completed ``f`` of a client process."""
    invoked: dict[Any, float] = {}
    out = []
    for op in ops:
        if op.f != f or not isinstance(op.process, int) or op.process == 0:
            continue
        if op.type == "invoke":
            invoked[op.process] = op.time
        elif op.process in invoked:
            out.append((invoked.pop(op.process), op.time, op.type))
    return out


def shared_slowdowns(later: list[Op], other: list[Op], start: float, end: float, gap_s: float,
                     tolerance_s: float) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Why the later of two RTOs is later: its silent gaps (no write acknowledged for longer
    than ``gap_s`` while one was in flight) and failures between ``start`` (the earlier
    client's recovery) and ``end`` (its own), split into (shared, unexplained). Its first
    acknowledged write after the outage must come within ``tolerance_s`` of ``start`` (else
    unexplained: it recovered later). A later gap is shared when the other client had a
    write in flight across it that took at least half of ``gap_s`` (its usual write takes a
    few ms): both were slowed at the same moment, and which side of the gap threshold each
    landed on is sampling, not the harness mismeasuring. A failure is never shared."""
    mine = _intervals(later)
    theirs = [(a, b) for a, b, _ in _intervals(other) if b - a >= gap_s / 2]
    shared, unexplained = [], []
    oks = [float("-inf"), *sorted(b for _, b, t in mine if t == "ok")]  # no ok before: the outage from the start
    for a, b, t in mine:
        if t != "ok" and start <= b <= end + 1e-6:
            unexplained.append((a, b))
    for prev, nxt in zip(oks, oks[1:], strict=False):
        if nxt - prev <= gap_s or nxt <= start or prev > end + 1e-6:
            continue
        if prev < start:  # the outage itself, as this client saw it end
            if nxt - start > tolerance_s:
                unexplained.append((prev, nxt))
        else:
            (shared if any(a < nxt and b > prev for a, b in theirs) else unexplained).append((prev, nxt))
    return shared, unexplained


@pytest.fixture
def agreement_stack(pgchaos_stack: Stack) -> Iterator[Stack]:
    """The session's stack; the independent writer's table is dropped afterwards."""
    yield pgchaos_stack
    with contextlib.suppress(psycopg.Error), \
            psycopg.connect(pgchaos_stack.dsn(via="router", connect_timeout=3), autocommit=True) as conn:
        conn.execute("SET statement_timeout = '10s'")
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")


def test_harness_rto_agrees_with_an_independent_writer(agreement_stack: Stack) -> None:
    stack = agreement_stack
    # evidence kept under reports/ (git-ignored): each scenario's history and verdict, and
    # the independent writer's own history beside them (independent-writes.jsonl)
    options = RunOptions(reports_dir=EVIDENCE, load_users=1)
    pairs: dict[str, dict[str, Any]] = {}
    for name, inject in SCENARIOS.items():
        with ScenarioRun(stack, f"rto-agreement-{name}", "coordinator-failure", options) as run:
            writer = IndependentWriter(stack.dsn(connect_timeout=1), run.run_start).start()
            try:
                run.sleep(1.5)
                fault = inject(run)
                run.wait_for_recovery()
                run.sleep(1.0)
                run.nemesis.heal(fault)
                run.sleep(0.5)
            finally:
                writer.stop()
        verdict = run.verdict
        assert verdict is not None, name
        fault_op, heal_op, index = _fault_and_heal(verdict["history"], name)
        harness = next(f["rto_s"]["write"] for f in verdict["faults"] if f["index"] == index)
        own = writer.ops(fault_op, heal_op)
        write_history(run.dir / "independent-writes.jsonl", own)
        independent = rto(own, fs=("write",))
        recovered = [v for v in (harness, independent["rto_s"]["write"]) if v is not None]
        harness_ops = read_history(verdict["history"])
        spread = queued_spread(harness_ops, own, fault_op.time + min(recovered)) if recovered else 0.0
        shared: list[tuple[float, float]] = []
        unexplained: list[tuple[float, float]] = []
        if len(recovered) == 2 and abs(recovered[0] - recovered[1]) > AGREEMENT_S + spread:
            later, other = (harness_ops, own) if recovered[0] > recovered[1] else (own, harness_ops)
            shared, unexplained = shared_slowdowns(later, other, fault_op.time + min(recovered),
                                                   fault_op.time + max(recovered), verdict["gap_s"]["write"],
                                                   AGREEMENT_S + spread)
        pairs[name] = {"harness": harness, "independent": independent["rto_s"]["write"],
                       "queued_spread_s": spread,
                       "shared_slowdowns": [(round(a - fault_op.time, 3), round(b - fault_op.time, 3))
                                            for a, b in shared],
                       "unexplained": [(round(a - fault_op.time, 3), round(b - fault_op.time, 3))
                                       for a, b in unexplained],
                       "gap_s": (verdict["gap_s"] or {}).get("write"),
                       "independent_gap_s": independent["gap_s"]["write"],
                       "writes": len(writer.records), "rate_hz": writer.rate_hz(fault_op.time),
                       "failed": sum(r[2] != "ok" for r in writer.records),
                       "verdict": verdict_message(verdict)}
        print(f"\n{name}: harness write RTO {harness} s, independent {pairs[name]['independent']} s "
              f"({pairs[name]['writes']} independent writes at {pairs[name]['rate_hz'][0]:.1f}/s before "
              f"the fault, median pace {pairs[name]['rate_hz'][1]:.1f}/s, {pairs[name]['failed']} not ok; "
              f"gap {pairs[name]['gap_s']} / {pairs[name]['independent_gap_s']} s; clients queued "
              f"across the outage served {spread:.3f} s apart)", flush=True)
    for name, p in pairs.items():
        assert p["rate_hz"][1] >= 50, (name, p)  # its pace; the mean sags when the machine is busy
        assert p["harness"] is not None and p["independent"] is not None, (name, p)
        assert p["queued_spread_s"] <= QUEUE_SPREAD_MAX_S, (name, p)
        # within the tolerance; or later only by silent gaps both clients were slowed in
        agree = abs(p["harness"] - p["independent"]) <= AGREEMENT_S + p["queued_spread_s"]
        assert agree or (p["shared_slowdowns"] and not p["unexplained"]), (name, p)
