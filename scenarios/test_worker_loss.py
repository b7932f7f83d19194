"""Operations guide, Disaster Recovery, Scenario 2 (worker node failure):
kill a worker under load. Writes on the other worker's shards keep
succeeding, those on the lost worker fail cleanly (an error, not an
acknowledged write, not a hang past the fdw connect timeout); the runbook's
manual intervention here is bringing the worker back. Two shard writers
(one per worker, keys chosen by the coordinator's own hash partitioning)
run beside the probe and locust so that each shard is sampled several times
a second. Target worker-failure (300 s / RPO 0)."""

import threading

import psycopg
import pytest
from shards import keys_on

from conftest import assert_verdict
from harness.history import Op
from harness.load.client import PROCESS_SPAN, Client
from harness.runbook import Runbook

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("worker-groups>=2", "worker-links>=2", "guide-schema"),
    pytest.mark.target("worker-failure"),
    pytest.mark.alerts("WorkerUnreachable"),
]

LOST, KEPT = "worker-1", "worker-2"
SHARD_WRITERS = {LOST: 51, KEPT: 52}  # process ids
HOLD_S = 10.0
DETECT_S = 60.0  # the detection checker's default time-to-detect target
GRACE_S = 2.5  # fdw connections to the dead worker fail within connect_timeout (2 s)


def shard_writer(run, worker: str, stop: threading.Event, last_ok: dict[str, float]) -> None:
    """Writes this worker's keys every 0.1 s until stopped (bounded by its key list); the
    invocation time of its latest acknowledged write in ``last_ok[worker]``."""
    process = SHARD_WRITERS[worker]
    client = Client(run.stack.dsn(), run.history, process)
    try:
        for key in keys_on(run.stack.dsn(), worker, run.key_base + process * PROCESS_SPAN, 2000):
            if stop.wait(0.1):
                break
            invoked = run.now()
            if client.write(key, "events") == "ok":
                last_ok[worker] = invoked
    finally:
        client.close()


def per_shard(ops: list[Op], start: float, end: float) -> dict:
    counts = {w: {"ok": 0, "fail": 0, "info": 0} for w in SHARD_WRITERS}
    by_process = {p: w for w, p in SHARD_WRITERS.items()}
    for op in ops:
        if op.f == "write" and op.type != "invoke" and op.process in by_process and start <= op.time <= end:
            counts[by_process[op.process]][op.type] += 1
    bad = []
    if counts[KEPT]["ok"] < 10:
        bad.append(f"only {counts[KEPT]['ok']} writes on {KEPT}'s shards succeeded while {LOST} was down")
    if counts[KEPT]["fail"] + counts[KEPT]["info"] > 0:
        bad.append(f"writes on {KEPT}'s shards failed while only {LOST} was down")
    if counts[LOST]["ok"] > 0:
        bad.append(f"{counts[LOST]['ok']} writes acknowledged on the dead {LOST}")
    if counts[LOST]["fail"] < 2:
        bad.append(f"writes on {LOST}'s shards did not fail cleanly ({counts[LOST]})")
    return {"valid": not bad, "reason": "; ".join(bad), "counts": counts}


def test_worker_loss(scenario_run):
    with scenario_run() as run:
        stop = threading.Event()
        last_ok: dict[str, float] = {}
        writers = [threading.Thread(target=shard_writer, args=(run, w, stop, last_ok), daemon=True)
                   for w in SHARD_WRITERS]
        for t in writers:
            t.start()
        try:
            run.sleep(2)
            fault = run.nemesis.inject("kill", run.stack.manifest.group(LOST).members[0])
            run.sleep(HOLD_S)
            # the worker stays down until someone is paged (bounded by the time-to-detect target)
            run.wait_for_alert("WorkerUnreachable", since=fault.time, timeout_s=DETECT_S - HOLD_S)
            # the runbook's manual intervention, "add replacement worker" (the same node back), as a
            # step that ends when the coordinator writes on its shards again: writes there that
            # fail while the worker starts and the coordinator reconnects are that step's
            with Runbook(run).step(f"add replacement worker: {LOST} started again, its shards written"):
                run.nemesis.heal(fault)
                healed_at = run.now()
                run.wait_until(f"{LOST} accepting connections again",
                               lambda: psycopg.connect(run.stack.dsn(LOST, connect_timeout=1)).close() is None,
                               timeout_s=120)
                run.wait_until(f"a write on {LOST}'s shards acknowledged through the coordinator",
                               lambda: last_ok.get(LOST, -1.0) > healed_at, timeout_s=120)
            run.wait_for_recovery()
            run.sleep(2)
        finally:
            stop.set()
            for t in writers:
                t.join(timeout=10)

        def shard_isolation(ops: list[Op]) -> dict:
            result = per_shard(ops, fault.time + GRACE_S, healed_at)
            run.figures["shard_writes_while_down"] = result["counts"]
            return result

        run.add_check("shard-isolation", shard_isolation)
    assert_verdict(run.verdict)
