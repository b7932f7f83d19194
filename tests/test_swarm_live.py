"""The swarm engine live, the CI subset (about 1.5–3 minutes): deploy the stack
with `docker stack deploy` (own stack name, offset ports, own state folder),
the steady state with the guide's `docker stack services` replica check, one
scenario (the coordinator leader's task killed), teardown — after which
nothing of ours remains (service, container, network, volume, loop mount) and
the engine's swarm state is as it was found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.engines.base import docker_client
from harness.engines.swarm.deployment import NAMESPACE_LABEL, remove_stack, swarm_state
from harness.stack import volumes

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

REPO = Path(__file__).resolve().parents[1]
STACK = f"pgchaos-swarm-ci-{os.getpid()}"
STATE_DIR = "/var/lib/pgchaos-swarm-ci"
PORTS = {  # clear of a stack on the defaults, of tests/offset_stack.py's, and of the kernel's
    # ephemeral range (32768-60999), where any client socket may hold a port for a while
    "PGCHAOS_PGBOUNCER_PORT": "16432", "PGCHAOS_HAPROXY_PRIMARY_PORT": "16000",
    "PGCHAOS_HAPROXY_REPLICA_PORT": "16001", "PGCHAOS_HAPROXY_STATS_PORT": "16404",
    "PGCHAOS_HEALTH_PORT": "16008", "PGCHAOS_TOXIPROXY_PORT": "16474", "PGCHAOS_PROMETHEUS_PORT": "16090",
    "PGCHAOS_ALERTMANAGER_PORT": "16093", "PGCHAOS_ALERT_RECEIVER_PORT": "16095",
}


def ours_left(client) -> dict[str, list[str]]:
    label = f"{NAMESPACE_LABEL}={STACK}"
    left: dict[str, list[str]] = {
        "containers": [c.name for c in client.containers.list(all=True, filters={"label": label},
                                                               ignore_removed=True)],
        "edge": [c.name for c in client.containers.list(
            all=True, filters={"label": f"io.pgchaos.swarm-edge={STACK}"}, ignore_removed=True)],
        "networks": [n.name for n in client.networks.list(names=[f"{STACK}_cluster"])],
        "volumes": [v.name for v in client.volumes.list(filters={"label": label})],
        "mounts": [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                   if line.split()[1].startswith(STATE_DIR + "/")],
    }
    if swarm_state(client)["state"] == "active" and swarm_state(client)["manager"]:
        left["services"] = [s.name for s in client.services.list(filters={"label": label})]
    return {k: v for k, v in left.items() if v}


def test_swarm_deploy_steady_state_leader_task_kill_and_clean_teardown(tmp_path: Path) -> None:
    client = docker_client()
    before = swarm_state(client)
    reports = tmp_path / "reports"
    env = {**os.environ, **PORTS, "PGCHAOS_STATE_DIR": STATE_DIR, "PGCHAOS_SWARM_STACK": STACK}
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
           "scenarios/test_swarm_leader_task_kill.py", "--pgchaos-engine", "swarm",
           "--pgchaos-load-users", "1", "--pgchaos-reports-dir", str(reports)]
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=480)
        out = proc.stdout + proc.stderr
        print(out[-3000:])
        verdicts = [json.loads(p.read_text()) for p in reports.glob("*/*/verdict.json")]
        assert len(verdicts) == 1, f"no verdict\n{out[-2000:]}"
        v = verdicts[0]
        print(f"verdict {v['verdict']}: RTO {v['rto_s']} lost {v['rpo'].get('lost')} figures {v['figures']}")
        steady = json.loads(next(reports.glob("*/*/steady-state-before.json")).read_text())
        replica_check = [c for c in steady["checks"] if c["name"] == "swarm_replicas"]
        assert replica_check and replica_check[0]["ok"], steady["checks"]
        assert v["rpo"]["lost"] == 0, v["reasons"]
        assert v["fault_effect"]["valid"] is True, v["fault_effect"]
        assert v["verdict"] in ("pass", "marginal", "waived"), v["reasons"]
        assert proc.returncode == 0, out[-2000:]
    finally:
        after = swarm_state(client)
        left = ours_left(client)
        if left:  # clean up this test's stack only (never `gc --all`: other stacks are not ours), then fail
            remove_stack(STACK, progress=print)
            for mount in volumes.mounts_under(Path(STATE_DIR)):
                volumes.unmount(mount)
    assert not left, f"left behind: {left}"
    assert after["state"] == before["state"], f"swarm state {before['state']} -> {after['state']}"
