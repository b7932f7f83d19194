"""The reference config on the variants gate's fault schedule (tests/schedules.py), on
the session's own stack: it keeps every acknowledged write, where async replication
(tests/test_variants_gate.py) loses some."""

from __future__ import annotations

from pathlib import Path

import pytest
from schedules import cut_replication_then_kill_leader, fault_rto

from harness.scenario import verdict_message
from harness.targets import load_targets

pytestmark = pytest.mark.docker


def test_reference_keeps_every_write_on_the_same_schedule(pgchaos_stack, tmp_path: Path) -> None:
    verdict = cut_replication_then_kill_leader(pgchaos_stack, "cut-then-kill-reference", tmp_path).verdict
    message = verdict_message(verdict)
    assert verdict["verdict"] == "unjudged", message  # no target row: nothing failed
    assert {f["severity"] for f in verdict["findings"]} <= {"unjudged", "note"}, message
    assert verdict["rpo"]["lost"] == 0, message
    bound = max(w.bound for w in load_targets().waivers_for("coordinator-failure"))
    rto = fault_rto(verdict, "kill")
    assert rto is not None and rto <= bound, message
