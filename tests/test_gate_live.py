"""The differential gate on live stacks, both of its inputs at once: a config variant of
the reference stack, and a manifest of the user's own stack. In each the candidate's
router checks are slower (HAProxy inter 3 s, fall 3, rise 2) and nothing else changes.
Every absolute target may still pass; the gate must flag the regression and name the
router phase. One sample a side (repeats are the unit tests' business, tests/test_gate.py):
the rule compares the candidate's fastest sample with the baseline's slowest. (The
baseline against itself is measured, not asserted here: with few samples a side the
reference stack's bimodal pooler phase makes that comparison flaky; see docs/verdicts.md.)

The two gates run side by side (four stacks, on ports and state folders of their own,
beside the session's): the router's regression (seconds against a fraction of one) stands
far above what a busy machine adds, and the wall time is one gate's, not two."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import pytest_with_env
from harness.engines.base import OWNER_LABEL, docker_client
from harness.gate import Side, collect, run_gate
from harness.stack.spec import shifted_ports

pytestmark = [pytest.mark.docker, pytest.mark.own_stack]  # stacks of its own, on ports of their own

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
# the variant's candidate: the CLI's candidate ports (+20000), a state folder of its own (the
# CLI gate of the manifests below, running at the same time, takes the CLI's, /var/lib/pgchaos-gate)
VARIANT_CANDIDATE_ENV = {**shifted_ports(20000), "PGCHAOS_STATE_DIR": "/var/lib/pgchaos-gate-variant"}
# the manifests gate's baseline (the caller's state folder)
MANIFESTS_STATE_DIR = "/var/lib/pgchaos-gate-manifests"
REPO = Path(__file__).resolve().parents[1]
FOREIGN = REPO / "tests" / "foreign"


def start_gate_of_two_manifests(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, Path]:
    """`pgchaos gate CANDIDATE.toml --baseline BASELINE.toml`, the user's own stack on both
    sides: the project's foreign stack (tests/foreign, its own compose file and manifest) as
    it is (HAProxy inter 1 s, fall 2, rise 1) against a copy of its folder with the public
    stack's router timings (inter 3 s, fall 3, rise 2) and nothing else changed; both
    provisioned from their manifests (ephemeral host ports). Started, not waited for."""
    slow = tmp_path / "shop-slow-router"
    shutil.copytree(FOREIGN, slow)
    cfg = slow / "haproxy.cfg"
    text = cfg.read_text()
    assert text.count("inter 1s fall 2 rise 1") == 2, text
    cfg.write_text(text.replace("inter 1s fall 2 rise 1", "inter 3s fall 3 rise 2"))
    reports, log = tmp_path / "manifests", tmp_path / "gate-of-manifests.log"
    env = {**os.environ, "PGCHAOS_STATE_DIR": MANIFESTS_STATE_DIR}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "gate", str(slow / "pgchaos.toml"),
                                 "--baseline", str(FOREIGN / "pgchaos.toml"), "--repeat", "1", "-k",
                                 "graceful_stop", "--reports-dir", str(reports), "--", "--load-users", "1"],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    return proc, reports, log


def test_slower_router_checks_are_a_regression_of_a_variant_and_of_a_manifest(tmp_path: Path) -> None:
    client = docker_client()
    ours_before = {c.id for c in client.containers.list(all=True, filters={"label": f"{OWNER_LABEL}=pgchaos"})}
    manifests, manifest_reports, log = start_gate_of_two_manifests(tmp_path / "m")
    try:
        # the variant through the library: `pgchaos gate haproxy-slow-checks`
        said: list[str] = []
        variant_dir = tmp_path / "variant"
        code = run_gate(Side("candidate", variant="haproxy-slow-checks", env=VARIANT_CANDIDATE_ENV),
                        Side("baseline", env=BASELINE_ENV), 1, ["-k", "graceful_stop"], pytest_with_env,
                        variant_dir, say=said.append)
        manifests.wait(timeout=900)
    finally:
        if manifests.poll() is None:  # the CLI removes its stacks on SIGINT
            manifests.send_signal(signal.SIGINT)
            manifests.wait(timeout=300)
    out = log.read_text()
    print(out[-3000:])
    report = "\n".join(said)
    print(report[-3000:])

    # the variant: regression, router phase, and the HAProxy timings named as the cause
    (gate_dir,) = variant_dir.glob("gate-*")
    result = json.loads((gate_dir / "gate.json").read_text())
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

    # the manifests: the CLI's exit status and report say the same of the user's own stack
    (gate_dir,) = manifest_reports.glob("gate-*")
    result = json.loads((gate_dir / "gate.json").read_text())
    assert manifests.returncode == 1, out[-3000:]
    assert result["regressions"] == ["test_coordinator_graceful_stop"], out[-3000:]
    entry = result["scenarios"]["test_coordinator_graceful_stop"]
    assert "router" in entry["regressed_phases"], out[-3000:]
    assert all(len(v) == 1 for v in entry["verdicts"].values()), out[-3000:]

    left = {c.name for c in client.containers.list(all=True, filters={"label": f"{OWNER_LABEL}=pgchaos"})
            if c.id not in ours_before}
    assert not left, f"the gates left {sorted(left)}"
