"""A fault schedule the variants gate and the reference run alike: the leader's
replication link cut, then the leader killed with writes in flight."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.scenario import RunOptions, ScenarioRun
from harness.stack import Stack

CUT_S = 3.0  # replication link blackholed this long before the kill (< wal_sender_timeout 10 s)
AFTER_FAILOVER_S = 3.0  # writes watched through the router after each step of a failover


def options(tmp_path: Path) -> RunOptions:
    return RunOptions(reports_dir=tmp_path / "reports", load_users=1)


def cut_replication_then_kill_leader(stack: Stack, name: str, tmp_path: Path) -> ScenarioRun:
    """Blackhole the leader's replication link (both streams: WAL is dropped, not
    delayed), kill the leader with writes in flight, let a replica take over.

    A latency toxic only delays: Toxiproxy still delivers what it holds after
    the leader dies, so the replicas catch up long before the 20 s TTL
    expires (500 ms of latency lost 1 write once: luck, not a gate).

    Judged without a target row: the link fault is still open during the kill,
    so per-fault RTO charges it with the failover too; RPO and recovery are
    what this schedule is about (the kill's RTO is checked by the caller).
    """
    with ScenarioRun(stack, name, None, options(tmp_path)) as run:
        cut = run.nemesis.inject("timeout", "replication", timeout=0)
        run.sleep(CUT_S)
        kill = run.nemesis.inject("kill", "primary")
        assert cut.target == f"replication-{kill.target}", (cut.target, kill.target)
        run.figures["new_leader"] = run.wait_for_new_leader(kill.target, timeout_s=60)
        run.wait_for_recovery(timeout_s=60)
    assert run.verdict is not None
    return run


def fault_rto(verdict: dict[str, Any], fault: str, kind: str = "write") -> float | None:
    return next(f["rto_s"][kind] for f in verdict["faults"] if f["f"] == fault)
