"""The split-brain probe's reading of its script, and a member seen in several containers
(a host cut off from the managers still runs one): the strongest state counts."""

from __future__ import annotations

import time
from pathlib import Path

from harness.checkers.split_brain import split_brain
from harness.history import HistoryWriter, read_history
from harness.load.writable_probe import WritableProbe, state_of


def test_the_script_answer_is_read_and_anything_else_is_down() -> None:
    assert state_of(0, "ack\n") == "ack" and state_of(0, "noise\nreplica\n") == "replica"
    assert state_of(1, "ack") == "down"  # the exec failed
    assert state_of(0, "") == "down" and state_of(0, "Error: no such container") == "down"


def test_an_old_leader_still_acknowledging_on_a_cut_off_host_is_a_split_brain(tmp_path: Path) -> None:
    """Member a: its container on the cut-off host still acknowledges writes while b, on
    the other side, was promoted; the default lookup (the managers' one container) would
    have said 'down'."""
    seen = {"a": ["down", "ack"], "b": ["ack"], "c": ["replica"]}
    path = tmp_path / "h.jsonl"
    history = HistoryWriter(path, run_start=time.monotonic())
    probe = WritableProbe(stack=None, nodes=("a", "b", "c"), history=history,  # type: ignore[arg-type]
                          period_s=0.01, states=lambda member, script: seen[member]).start()
    deadline = time.monotonic() + 5
    while probe.rounds < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    probe.stop()
    history.close()
    result = split_brain(read_history(path))
    assert result["valid"] is False, result
    assert result["split_brain"][0]["acknowledging"] == ["a", "b"]
    # demoted there: the same probe finds one writer
    seen["a"] = ["replica"]
    path2 = tmp_path / "h2.jsonl"
    history = HistoryWriter(path2, run_start=time.monotonic())
    probe = WritableProbe(stack=None, nodes=("a", "b", "c"), history=history,  # type: ignore[arg-type]
                          period_s=0.01, states=lambda member, script: seen[member]).start()
    while probe.rounds < 2 and time.monotonic() < deadline + 5:
        time.sleep(0.01)
    probe.stop()
    history.close()
    assert split_brain(read_history(path2))["valid"] is True
