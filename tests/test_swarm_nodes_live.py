"""The multi-node swarm engine live, the CI subset: three Docker-in-Docker hosts
(`--engine swarm-nodes`, own stack name, ports and state folder), the stack
deployed through a manager, the steady state with its placement check, the
host holding the coordinator leader crashed and judged, teardown — after
which nothing of ours remains (node, volume, network, edge, loop mount).
It never touches the engine's own swarm state, so it runs beside compose
stacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from swarm_leftovers import stack_left

from harness.engines.base import docker_client, remove_project_resources
from harness.engines.swarm.deployment import swarm_state
from harness.stack import volumes
from harness.stack.spec import shifted_ports

# bounded: the subprocess within 840 s (a busy 2-core machine needed 8-13 min), cleanup after
# beside: its assertions allow for a busy machine (see the verdict's below); a worker of its own
pytestmark = [pytest.mark.docker, pytest.mark.own_stack, pytest.mark.timeout(1080),
              pytest.mark.beside(weight=2)]

REPO = Path(__file__).resolve().parents[1]
STACK = f"pgchaos-nodes-ci-{os.getpid()}"
STATE_DIR = "/var/lib/pgchaos-nodes-ci"
# clear of a stack on the defaults, of the swarm test's (16xxx), of tests/offset_stack.py's
# (+20000) and of the kernel's ephemeral range
PORTS = shifted_ports(12000)


def ours_left(client) -> dict[str, list[str]]:
    return stack_left(client, STACK, STATE_DIR)


def test_swarm_nodes_deploy_placement_leader_node_crash_and_clean_teardown(tmp_path: Path) -> None:
    client = docker_client()
    before = swarm_state(client)
    reports = tmp_path / "reports"
    env = {**os.environ, **PORTS, "PGCHAOS_STATE_DIR": STATE_DIR, "PGCHAOS_SWARM_STACK": STACK}
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
           "scenarios/test_node_crash_leader.py", "--pgchaos-engine", "swarm-nodes",
           "--pgchaos-load-users", "1", "--pgchaos-reports-dir", str(reports)]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=840)
        out = proc.stdout + proc.stderr
        print(out[-3000:])
        print(f"swarm-nodes CI subset: {time.monotonic() - t0:.0f} s")
        verdicts = [json.loads(p.read_text()) for p in reports.glob("*/*/verdict.json")]
        assert len(verdicts) == 1, f"no verdict\n{out[-2000:]}"
        v = verdicts[0]
        print(f"verdict {v['verdict']}: RTO {v['rto_s']} lost {v['rpo'].get('lost')} figures {v['figures']}")
        steady = json.loads(next(reports.glob("*/*/steady-state-before.json")).read_text())
        checks = {c["name"]: c for c in steady["checks"]}
        assert checks.get("placement", {}).get("ok"), steady["checks"]
        nodes = set(checks["placement"]["data"]["nodes"].values())
        assert len(nodes) == 3, f"members on {nodes}: three hosts expected"
        assert checks.get("swarm_replicas", {}).get("ok"), steady["checks"]
        assert v["rpo"]["lost"] == 0, v["reasons"]
        assert v["fault_effect"]["valid"] is True, v["fault_effect"]
        assert v["figures"].get("swarm_detect_s"), v["figures"]  # Swarm marked the crashed host down
        assert v["figures"]["new_leader"] != v["figures"]["old_leader"], v["figures"]
        # The verdict is the stack's on this machine, judged and reported as it is: three engines
        # on 2 cores put the leader-host crash's write RTO on both sides of the hard-kill waiver's
        # 25 s bound (20.9, 24.6, 27.3 s: Patroni's ttl, then commits slow for seconds while the
        # new leader's synchronous standby catches up). This self-test holds the engine to what it
        # owns: the only failure allowed is that RTO over its bound, measured and recovered.
        failing = [f for f in v["findings"] if f["severity"] in ("fail", "error", "unknown")]
        over_bound = (all(f["code"] == "rto-over-target" for f in failing)
                      and {f["f"] for f in v["faults"]} == {"node-crash"})
        assert v["verdict"] in ("pass", "marginal", "waived") or (v["verdict"] == "fail" and over_bound), \
            v["reasons"]
        assert v["rto_s"]["write"] is not None and v["rto_s"]["read"] is not None, v["reasons"]
        # twice the bound would be a failover that went wrong, not a slow machine
        assert max(v["rto_s"]["write"], v["rto_s"]["read"]) < 50, v["reasons"]
        assert proc.returncode == (0 if v["verdict"] != "fail" else 1), out[-2000:]
    finally:
        left = ours_left(client)
        if left:  # clean up this test's nodes only (never `gc --all`), then fail
            remove_project_resources(client, STACK)
            for mount in volumes.mounts_under(Path(STATE_DIR)):
                volumes.unmount(mount)
    assert not left, f"left behind: {left}"
    assert swarm_state(client)["state"] == before["state"], "the engine's own swarm state changed"
