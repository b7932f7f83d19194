"""The differential gate on live stacks: the reference against a variant whose router
checks are slower (HAProxy inter 3 s, fall 3, rise 2). Every absolute target may still
pass; the gate must flag the regression and name the router phase. One sample a side
(repeats are the unit tests' business, tests/test_gate.py): the rule compares the
candidate's fastest sample with the baseline's slowest. (The baseline against itself is
measured, not asserted here: with few samples a side the reference stack's bimodal pooler
phase makes that comparison flaky; see docs/verdicts.md.)

Both stacks sit beside the session's (on ports and state folders of their own)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import pytest_with_env
from harness.gate import CANDIDATE_ENV, Side, collect, run_gate

pytestmark = [pytest.mark.docker, pytest.mark.own_stack]  # its candidate uses the offset ports

BASELINE_ENV = {
    "PGCHAOS_PGBOUNCER_PORT": "17432",
    "PGCHAOS_HAPROXY_PRIMARY_PORT": "17000",
    "PGCHAOS_HAPROXY_REPLICA_PORT": "17001",
    "PGCHAOS_HAPROXY_STATS_PORT": "17404",
    "PGCHAOS_HEALTH_PORT": "17008",
    "PGCHAOS_TOXIPROXY_PORT": "17474",
    "PGCHAOS_PROMETHEUS_PORT": "17090",
    "PGCHAOS_ALERTMANAGER_PORT": "17093",
    "PGCHAOS_ALERT_RECEIVER_PORT": "17095",
    "PGCHAOS_STATE_DIR": "/var/lib/pgchaos-gate-baseline",
}


def test_slower_router_checks_are_a_regression_naming_the_router_phase(tmp_path: Path) -> None:
    said: list[str] = []
    code = run_gate(Side("candidate", variant="haproxy-slow-checks", env=CANDIDATE_ENV),
                    Side("baseline", env=BASELINE_ENV), 1, ["-k", "graceful_stop"], pytest_with_env,
                    tmp_path, say=said.append)
    (gate_dir,) = tmp_path.glob("gate-*")
    result = json.loads((gate_dir / "gate.json").read_text())
    report = "\n".join(said)
    assert code == 1, report
    assert result["regressions"] == ["test_coordinator_graceful_stop"], report
    entry = result["scenarios"]["test_coordinator_graceful_stop"]
    assert "router" in entry["regressed_phases"], report
    assert any("HAProxy inter/fall/rise" in r for r in entry["regressions"]), report
    assert all(len(v) == 1 for v in entry["verdicts"].values()), report
    # the baseline's samples are where the report says, and the router phase is what moved
    baseline = collect([gate_dir / "baseline" / "sample-1"])
    router = entry["figures"]["phase:router"]
    assert router["candidate"]["min"] > max(baseline["test_coordinator_graceful_stop"].figures["phase:router"]) + 1
