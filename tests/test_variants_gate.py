"""The gate on config changes, proven on live stacks: each shipped variant must turn
the verdict red for the right reason.

lag-alert-blind goes through the user's own flow (`pytest scenarios --pgchaos-variant`),
provisioned on a stack of its own (offset ports, separate state folder).
haproxy-follows-any-member changes only haproxy.cfg, which HAProxy reads when it starts:
it is applied to the session's stack (the variant's file over the run's copy, which the
container mounts, then HAProxy restarted) and the reference's put back afterwards. At
its start HAProxy's stick table is empty, as on a stack provisioned with the variant.
async-replication (Patroni's dynamic configuration only) is applied to the session's
stack beside the reference run of the same fault schedule (tests/test_reference_schedule.py),
small-pool likewise (tests/test_capacity_gate.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from offset_stack import OFFSET_ENV, STATE_DIR, offset_env  # noqa: E402,F401 - fixture
from schedules import AFTER_FAILOVER_S

from harness.history import read_history
from harness.scenario import RunOptions, ScenarioRun, verdict_message
from harness.stack import Stack
from harness.stack.spec import COMPOSE_DIR
from harness.stack.steady_state import wait_for_steady_state
from harness.stack.topology import discover

pytestmark = [pytest.mark.docker]

ROUTER_VARIANT = "haproxy-follows-any-member"


def primary_backend(stack: Stack) -> dict[str, str]:
    """HAProxy's own view of its primary backend: server -> status (its stats page)."""
    import requests

    router = stack.manifest.router
    assert router.stats_port is not None, "the router publishes no stats page"
    url = f"http://{stack.endpoint(router.service, router.stats_port)}/stats;csv"
    rows = [line.split(",") for line in requests.get(url, timeout=2).text.splitlines()]
    return {r[1]: r[17] for r in rows if len(r) > 17 and r[0] == "primary" and r[1] not in ("FRONTEND", "BACKEND")}


def restart_router(stack: Stack) -> None:
    """HAProxy restarted (it reads haproxy.cfg at start); no client connects until its checks
    have settled (only Patroni's leader up in the primary backend: at its start HAProxy holds
    every server up until its checks fail, and with the variant a first connection in that
    second would stick to a replica for good); then the steady state back."""
    import time

    import requests

    stack.container(stack.manifest.router.service).restart(timeout=5)
    leader, servers, deadline = discover(stack).leader, {}, time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            servers = primary_backend(stack)
        except requests.RequestException:
            servers = {}
        up = [name for name, status in servers.items() if status.startswith("UP")]  # "UP 1/2": up still
        if leader and up == [leader]:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"HAProxy's checks did not settle on the leader {leader} in 30 s: {servers}")
    state = wait_for_steady_state(stack, timeout=60)
    assert state.healthy, f"after restarting the router: {state.summary()}; HAProxy: {primary_backend(stack)}"


@pytest.fixture
def router_variant(pgchaos_stack: Stack) -> Iterator[Stack]:
    """The session's stack with the variant's haproxy.cfg; the reference's put back after."""
    run_copy = Path(pgchaos_stack.config_dir) / "haproxy.cfg"
    reference = run_copy.read_text()
    assert reference == (COMPOSE_DIR / "config" / "haproxy.cfg").read_text(), "not the reference's config"
    variant_dir = COMPOSE_DIR / "variants" / ROUTER_VARIANT
    assert sorted(p.name for p in variant_dir.iterdir()) == ["haproxy.cfg"], "provision it instead"
    with run_copy.open("w") as f:  # in place: the container mounts this very file
        f.write((variant_dir / "haproxy.cfg").read_text())
    try:
        restart_router(pgchaos_stack)
        yield pgchaos_stack
    finally:
        with run_copy.open("w") as f:
            f.write(reference)
        restart_router(pgchaos_stack)


def test_router_that_does_not_follow_the_leader_fails_the_gate(router_variant: Stack, tmp_path: Path) -> None:
    stack, variant = router_variant, ROUTER_VARIANT
    # writes keep reaching a read-only member: the steady state cannot return, and the wait for it
    # ends by name (the stack's own time to follow a leader, 3 times over), not after its 3 min timeout
    settle = RunOptions(reports_dir=tmp_path / "reports", load_users=1)
    with ScenarioRun(stack, f"kill-leader-{variant}", "coordinator-failure", settle) as run:
        kill = run.nemesis.inject("kill", "primary")
        run.figures["new_leader"] = run.wait_for_new_leader(kill.target, timeout_s=60)
        run.sleep(AFTER_FAILOVER_S)
        run.nemesis.heal(kill)  # the old leader comes back, as a replica

        def rejoined() -> bool:
            return any(m.name == kill.target and m.state == "streaming" for m in discover(stack).replicas)

        run.wait_until(f"{kill.target} streaming from the new leader", rejoined, timeout_s=60)
        run.sleep(AFTER_FAILOVER_S)
    verdict = run.verdict
    assert verdict is not None
    message = verdict_message(verdict)
    target = verdict["target"]["rto_s"]
    rto = verdict["rto_s"]["write"]
    assert verdict["verdict"] == "fail", message
    assert rto is None or rto > target, message
    assert any("writes never recovered" in r or "write RTO" in r for r in verdict["reasons"]), message
    healed_at = next(op.time for op in read_history(verdict["history"])
                     if op.f == "heal" and op.process == "nemesis")
    errors = [op.error or "" for op in read_history(verdict["history"])
              if op.f == "write" and op.type == "fail" and op.time > healed_at]
    assert any("read-only transaction" in e for e in errors), errors[-5:]
    assert any("the router does not follow the leader" in r for r in verdict["reasons"]), message


@pytest.mark.own_stack
@pytest.mark.usefixtures("offset_env")
def test_lag_alert_set_too_high_fails_network_lag_on_detection(tmp_path: Path) -> None:
    """lag-alert-blind (the lag rules at 10 GB / 100 GB): the network-lag scenario —
    green on the reference stack in the same CI run — turns red because the
    replication lag it builds is never paged. The scenario keeps the lag until
    the page comes, at most the time-to-detect target: the guide's 60 s, tightened
    here with --pgchaos-detect-s to 20 s (the reference pages in 3-4 s), so the
    red comes 40 s sooner for the same reason. With synchronous replication a
    lagging standby stalls commits: the only other reasons allowed are that fault's
    RTO, the price of nobody being paged."""
    import json
    import os
    import re
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    reports = tmp_path / "reports"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "scenarios/test_network_lag.py",
           "--pgchaos-variant", "lag-alert-blind", "--pgchaos-load-users", "1", "--pgchaos-detect-s", "20",
           "--pgchaos-reports-dir", str(reports)]
    proc = subprocess.run(cmd, cwd=repo, env=dict(os.environ), capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    verdicts = [json.loads(p.read_text()) for p in reports.glob("*/*/verdict.json")]
    assert len(verdicts) == 1, out[-3000:]
    (verdict,) = verdicts
    print(verdict_message(verdict))
    assert proc.returncode == 1 and verdict["verdict"] == "fail", out[-3000:]
    undetected = [r for r in verdict["reasons"]
                  if r.startswith("detection: fault not detected: ReplicationLagWarning")]
    # a marginal finding (an RTO within the margin of its bound: a busy machine) weighs nothing here
    marginal = {f["text"] for f in verdict["findings"] if f["severity"] == "marginal"}
    others = [r for r in verdict["reasons"] if r not in undetected and r not in marginal]
    assert undetected and verdict["rpo"]["lost"] == 0, verdict["reasons"]
    assert all(re.match(r"fault #\d+ 'bandwidth' on replication-\S+: (write|read) RTO", r) for r in others), others
    assert verdict["figures"]["replication_lag"]["bytes"] > 10 * 1024 * 1024  # the lag was there
