"""Distributed load (locust's master/worker mode): the command lines, and a live run
with two local workers whose histories merge into one, judged like any other."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from harness.errors import PgchaosError
from harness.history import read_history
from harness.load.locust_runner import PROCESS_BASE, WORKER_SPAN, LocustLoad
from harness.scenario import RunOptions, ScenarioRun

DSN = "host=127.0.0.1 port=1 dbname=x"


def test_distributed_commands_bind_the_master_to_loopback(tmp_path: Path) -> None:
    load = LocustLoad(DSN, tmp_path, 0.0, 0, users=4, workers=2)
    load.master_port = 5557
    cmd = " ".join(load.command())
    assert "--master --master-bind-host 127.0.0.1 --master-bind-port 5557 --expect-workers 2" in cmd
    assert "--master-host 127.0.0.1 --master-port 5557" in " ".join(load.worker_command())
    assert [p.name for p in load.history_paths] == [
        "history-locust.jsonl", "history-locust-worker-0.jsonl", "history-locust-worker-1.jsonl"]
    assert "--master" not in LocustLoad(DSN, tmp_path, 0.0, 0).command()


def test_too_many_workers_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PgchaosError, match="load workers"):
        LocustLoad(DSN, tmp_path, 0.0, 0, workers=11)


def test_bad_worker_count_is_one_usage_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--co", "-q",
                           "--pgchaos-load-workers", "-1", "tests/test_targets.py"],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "--pgchaos-load-workers: -1 not in 0..10" in proc.stderr


@pytest.mark.docker
def test_two_local_workers_merge_into_one_judged_history(pgchaos_stack, tmp_path: Path) -> None:
    options = RunOptions(reports_dir=tmp_path, load_users=4, load_workers=2)
    with ScenarioRun(pgchaos_stack, "distributed-load", None, options) as run:
        run.sleep(4.0)
    verdict = run.verdict
    assert verdict is not None
    ops = read_history(verdict["history"])
    ranges = Counter((op.process - PROCESS_BASE) // WORKER_SPAN for op in ops
                     if isinstance(op.process, int) and op.process >= PROCESS_BASE and op.type == "ok")
    print(f"ok ops per worker: {dict(ranges)}")
    assert set(ranges) == {0, 1}, ranges  # both workers ran users, each in its own process range
    assert verdict["rpo"]["lost"] == 0 and not verdict["rpo"]["unexpected"], verdict["reasons"]
    # no fault and no target row: nothing to judge it by, and nothing failed
    assert verdict["verdict"] == "unjudged", verdict["reasons"]
    assert {f["code"] for f in verdict["findings"] if f["severity"] != "note"} == {"nothing-judged"}
