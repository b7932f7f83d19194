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
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import pytest_with_env
from harness.engines.base import OWNER_LABEL, docker_client
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


REPO = Path(__file__).resolve().parents[1]
FOREIGN = REPO / "tests" / "foreign"


def test_gate_of_two_manifests_flags_the_slower_router(tmp_path: Path) -> None:
    """`pgchaos gate CANDIDATE.toml --baseline BASELINE.toml`, the user's own stack on both
    sides: the project's foreign stack (tests/foreign, its own compose file and manifest) as
    it is (HAProxy inter 1 s, fall 2, rise 1) against a copy of its folder with the public
    stack's router timings (inter 3 s, fall 3, rise 2) and nothing else changed. Both are
    provisioned from their manifests at once (ephemeral host ports, state folders of their
    own), one sample a side: the router phase regressed, and neither stack is left."""
    client = docker_client()
    ours_before = {c.id for c in client.containers.list(all=True, filters={"label": f"{OWNER_LABEL}=pgchaos"})}
    slow = tmp_path / "shop-slow-router"
    shutil.copytree(FOREIGN, slow)
    cfg = slow / "haproxy.cfg"
    text = cfg.read_text()
    assert text.count("inter 1s fall 2 rise 1") == 2, text
    cfg.write_text(text.replace("inter 1s fall 2 rise 1", "inter 3s fall 3 rise 2"))
    reports = tmp_path / "reports"
    env = {**os.environ, "PGCHAOS_STATE_DIR": BASELINE_ENV["PGCHAOS_STATE_DIR"]}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "gate", str(slow / "pgchaos.toml"),
                           "--baseline", str(FOREIGN / "pgchaos.toml"), "--repeat", "1", "-k", "graceful_stop",
                           "--reports-dir", str(reports), "--", "--load-users", "1"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    print(out[-3000:])
    (gate_dir,) = reports.glob("gate-*")
    result = json.loads((gate_dir / "gate.json").read_text())
    assert proc.returncode == 1, out[-3000:]
    assert result["regressions"] == ["test_coordinator_graceful_stop"], out[-3000:]
    entry = result["scenarios"]["test_coordinator_graceful_stop"]
    assert "router" in entry["regressed_phases"], out[-3000:]
    assert all(len(v) == 1 for v in entry["verdicts"].values()), out[-3000:]
    left = {c.name for c in client.containers.list(all=True, filters={"label": f"{OWNER_LABEL}=pgchaos"})
            if c.id not in ours_before}
    assert not left, f"the gate left {sorted(left)}"
