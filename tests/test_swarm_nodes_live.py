"""The multi-node swarm engine live, the CI subset: three Docker-in-Docker hosts
(`--engine swarm-nodes`, own stack name, ports and state folder), the stack
deployed through a manager, the steady state with its placement check, the
host holding the coordinator leader crashed and judged; then, the stack kept,
a second session attaches to it as to a swarm someone else deployed
(`--attach` with a manifest's `[swarm]`: the nodes' engines by their unix
sockets, the host ports the outer edge publishes), kills the leader's task
through its node's engine, is judged and leaves the stack as it found it;
teardown — after which nothing of ours remains (node, volume, network, edge,
loop mount). It never touches the engine's own swarm state, so it runs beside
compose stacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from swarm_attach import attach_manifest
from swarm_leftovers import stack_left

from harness.engines.base import docker_client, remove_project_resources
from harness.engines.swarm.deployment import NAMESPACE_LABEL, swarm_state
from harness.engines.swarm_nodes.deployment import SwarmNodesDeployment
from harness.stack import volumes
from harness.stack.manifest import load_manifest
from harness.stack.spec import COMPOSE_DIR, Ports, shifted_ports

# bounded: the provisioning session within 840 s (a busy 2-core machine needed 8-13 min), the
# attached one within 420 s, cleanup after
# beside: its assertions allow for a busy machine (see the verdict's below); a worker of its own
pytestmark = [pytest.mark.docker, pytest.mark.own_stack, pytest.mark.timeout(1500),
              pytest.mark.beside(weight=2)]

REPO = Path(__file__).resolve().parents[1]
STACK = f"pgchaos-nodes-ci-{os.getpid()}"
STATE_DIR = "/var/lib/pgchaos-nodes-ci"
# clear of a stack on the defaults, of the swarm test's (16xxx), of tests/offset_stack.py's
# (+20000) and of the kernel's ephemeral range
PORTS = shifted_ports(12000)


def ours_left(client) -> dict[str, list[str]]:
    return stack_left(client, STACK, STATE_DIR)


def judged_as_owned(v: dict, fault: str) -> None:
    """The verdict is the stack's on this machine, judged and reported as it is: several
    engines on 2 cores put a leader loss's write RTO on both sides of its waiver's 25 s bound
    (20.9, 24.6, 27.3 s: Patroni's ttl, then commits slow for seconds while the new leader's
    synchronous standby catches up). This self-test holds the engine to what it owns: the
    only failure allowed is that RTO over its bound, measured and recovered."""
    assert v["rpo"]["lost"] == 0, v["reasons"]
    assert v["fault_effect"]["valid"] is True, v["fault_effect"]
    failing = [f for f in v["findings"] if f["severity"] in ("fail", "error", "unknown")]
    over_bound = all(f["code"] == "rto-over-target" for f in failing) and {f["f"] for f in v["faults"]} == {fault}
    assert v["verdict"] in ("pass", "marginal", "waived") or (v["verdict"] == "fail" and over_bound), v["reasons"]
    assert v["rto_s"]["write"] is not None and v["rto_s"]["read"] is not None, v["reasons"]
    # twice the bound would be a failover that went wrong, not a slow machine
    assert max(v["rto_s"]["write"], v["rto_s"]["read"]) < 50, v["reasons"]


def the_stack_as_deployed(run_dir: Path, folder: Path) -> tuple[Path, list[str]]:
    """A manifest for the kept stack as if someone else had deployed it: its managers and
    nodes are the nodes' engines (unix sockets in the run's folder), its host ports the ones
    the outer edge publishes on 127.0.0.1 (read from Docker); and the stack's services."""
    reference = load_manifest(COMPOSE_DIR / "pgchaos.toml")
    provisioned = SwarmNodesDeployment(STACK, COMPOSE_DIR, reference, Ports(), state_dir=run_dir, count=3)
    sockets = {n.name: n.endpoint for n in provisioned.nodes.nodes}
    edge = docker_client().containers.get(provisioned.edge_name)
    published = edge.attrs["NetworkSettings"]["Ports"]
    ports = {f"{svc}:{port}": int(published[f"{edge_port}/tcp"][0]["HostPort"])
             for svc, port, edge_port, _ in provisioned.edge_routes()}
    path = attach_manifest(folder, STACK, list(sockets.values())[:2], sockets, ports)
    services = sorted(s.name for s in provisioned.nodes.client(provisioned.nodes.nodes[0]).services.list(
        filters={"label": f"{NAMESPACE_LABEL}={STACK}"}))
    return path, services


def test_swarm_nodes_deploy_placement_leader_node_crash_and_clean_teardown(tmp_path: Path) -> None:
    client = docker_client()
    before = swarm_state(client)
    reports = tmp_path / "reports"
    env = {**os.environ, **PORTS, "PGCHAOS_STATE_DIR": STATE_DIR, "PGCHAOS_SWARM_STACK": STACK}
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
           "scenarios/test_node_crash_leader.py", "--pgchaos-engine", "swarm-nodes", "--pgchaos-keep-stack",
           "--pgchaos-load-users", "1", "--pgchaos-reports-dir", str(reports)]
    t0 = time.monotonic()
    runs = Path(STATE_DIR) / "runs"
    before_runs = set(runs.glob("*")) if runs.exists() else set()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=840)
        out = proc.stdout + proc.stderr
        print(out[-3000:])
        print(f"swarm-nodes CI subset: {time.monotonic() - t0:.0f} s")
        kept = sorted(set(runs.glob("*")) - before_runs) if runs.exists() else []
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
        assert v["figures"].get("swarm_detect_s"), v["figures"]  # Swarm marked the crashed host down
        assert v["figures"]["new_leader"] != v["figures"]["old_leader"], v["figures"]
        judged_as_owned(v, "node-crash")
        assert proc.returncode == (0 if v["verdict"] != "fail" else 1), out[-2000:]
        assert len(kept) == 1, f"--pgchaos-keep-stack kept {kept}"

        # The kept stack, attached to as someone else's swarm: through the manifest's [swarm] only.
        manifest, services = the_stack_as_deployed(kept[0], tmp_path)
        attached_reports = tmp_path / "attached"
        t1 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
                               "scenarios/test_swarm_leader_task_kill.py", "--pgchaos-engine", "swarm-nodes",
                               "--manifest", str(manifest), f"--attach={STACK}", "--pgchaos-load-users", "1",
                               "--pgchaos-reports-dir", str(attached_reports)],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=420)
        out = proc.stdout + proc.stderr
        print(out[-3000:])
        print(f"swarm-nodes attached session: {time.monotonic() - t1:.0f} s")
        verdicts = [json.loads(p.read_text()) for p in attached_reports.glob("*/*/verdict.json")]
        assert len(verdicts) == 1, f"no verdict of the attached session\n{out[-2000:]}"
        v = verdicts[0]
        print(f"attached verdict {v['verdict']}: RTO {v['rto_s']} lost {v['rpo'].get('lost')} "
              f"figures {v['figures']}")
        info = json.loads(next(attached_reports.glob("*/run-info.json")).read_text())["stack"]
        assert info["attached"] is True and info["engine"] == "swarm-nodes", info
        assert v["figures"].get("replacement_running_after_s"), v["figures"]  # Swarm replaced the killed task
        judged_as_owned(v, "task-kill")
        assert proc.returncode == (0 if v["verdict"] != "fail" else 1), out[-2000:]
        # detached as found: the same services, every node, the edge and the run still there
        _, after = the_stack_as_deployed(kept[0], tmp_path / "after")
        assert after == services, f"the attached session changed the stack: {services} -> {after}"
        assert kept[0].exists(), "the attached session removed the provisioned run's state"
    finally:
        if runs.exists():
            for run in sorted(set(runs.glob("*")) - before_runs):  # the kept stack: removed as `pgchaos down`
                subprocess.run([sys.executable, "-m", "harness.cli", "down", "--run-id", run.name], cwd=REPO,
                               env=env, capture_output=True, text=True, timeout=300)
        left = ours_left(client)
        if left:  # clean up this test's nodes only (never `gc --all`), then fail
            remove_project_resources(client, STACK)
            for mount in volumes.mounts_under(Path(STATE_DIR)):
                volumes.unmount(mount)
    assert not left, f"left behind: {left}"
    assert swarm_state(client)["state"] == before["state"], "the engine's own swarm state changed"
