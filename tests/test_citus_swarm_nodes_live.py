"""Citus on Swarm live, on three Docker-in-Docker hosts (`--profile citus --engine
swarm-nodes`, own stack name, ports and state folder): the stack deployed as the guide
names it, the steady state (placement by task slot included), then the guide's
`docker service` commands as written, each a scenario under load — `update --force`
of the coordinator and of PgBouncer, the rolling `update --image` of the workers, and
`scale postgres-mesh_worker=5` with `citus_add_node` / `rebalance_table_shards()` and
the drain back to 4 (Patroni paused for the group first) — then the stack's own
Toxiproxy link of a worker cut (the alert sees it), a worker's host and the coordinator
leader's host crashed, and teardown, after which nothing of ours remains. Skipped
without a Citus package (PGCHAOS_CITUS_DEB) or image (PGCHAOS_CITUS_IMAGE)."""

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
from harness.errors import PgchaosError
from harness.stack import volumes
from harness.stack.images import citus_source
from harness.stack.spec import shifted_ports

# bounded: the subprocess within 3300 s (seven scenarios on 2 cores), cleanup after
pytestmark = [pytest.mark.docker, pytest.mark.own_stack, pytest.mark.timeout(3600)]

REPO = Path(__file__).resolve().parents[1]
STACK = f"pgchaos-citus-swarm-{os.getpid()}"
STATE_DIR = "/var/lib/pgchaos-citus-swarm-ci"
# clear of the defaults, of the swarm tests' (12xxx, 16xxx), of tests/offset_stack.py's
# (+20000) and of the kernel's ephemeral range
PORTS = shifted_ports(13000)
GUIDE_COMMANDS = ["scenarios/test_citus_swarm_coordinator_force_update.py",
                  "scenarios/test_citus_swarm_pgbouncer_force_update.py",
                  "scenarios/test_citus_swarm_scale_out.py",
                  "scenarios/test_citus_swarm_worker_rolling_update.py"]
# the stack's own links and its hosts failing
LINKS_AND_HOSTS = ["scenarios/test_citus_worker_link.py",
                   "scenarios/test_node_crash_worker.py",
                   "scenarios/test_node_crash_leader.py"]
SCENARIOS = GUIDE_COMMANDS + LINKS_AND_HOSTS


def ours_left(client) -> dict[str, list[str]]:
    return stack_left(client, STACK, STATE_DIR)


def citus_missing() -> str | None:
    try:
        citus_source()
    except PgchaosError as exc:
        return f"PGCHAOS_CITUS_DEB or PGCHAOS_CITUS_IMAGE not given: {exc}"
    return None


def test_citus_on_swarm_nodes_runs_the_guides_service_commands_and_leaves_nothing(tmp_path: Path) -> None:
    missing = citus_missing()
    if missing:
        pytest.skip(missing)
    client = docker_client()
    before = swarm_state(client)
    reports = tmp_path / "reports"
    env = {**os.environ, **PORTS, "PGCHAOS_STATE_DIR": STATE_DIR, "PGCHAOS_SWARM_STACK": STACK}
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *SCENARIOS,
           "--pgchaos-engine", "swarm-nodes", "--stack-profile", "citus", "--pgchaos-load-users", "1",
           "--pgchaos-reports-dir", str(reports)]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=3300)
        out = proc.stdout + proc.stderr
        print(out[-3000:])
        print(f"Citus on swarm-nodes: {time.monotonic() - t0:.0f} s")
        verdicts = {p.parent.name: json.loads(p.read_text()) for p in reports.glob("*/*/verdict.json")}
        assert set(verdicts) == {Path(s).stem for s in SCENARIOS}, f"verdicts: {sorted(verdicts)}\n{out[-2000:]}"
        steady = json.loads(next(reports.glob("*/*/steady-state-before.json")).read_text())
        checks = {c["name"]: c for c in steady["checks"]}
        assert checks["placement"]["ok"], checks["placement"]
        placed = checks["placement"]["data"]["nodes"]
        assert len({placed[f"coordinator-{n}"] for n in (1, 2, 3)}) == 3, placed  # one per host
        assert {f"worker-{n}" for n in (1, 2, 3, 4)} <= set(placed), placed
        assert checks["citus_active_workers"]["ok"] and checks["swarm_replicas"]["ok"], steady["checks"]
        for name, v in verdicts.items():
            print(f"{name}: {v['verdict']} RTO {v['rto_s']} lost {v['rpo'].get('lost')}")
            assert v["rpo"]["lost"] == 0, (name, v["reasons"])
            assert v["fault_effect"]["valid"] is True, (name, v["fault_effect"])
            if f"scenarios/{name}.py" not in GUIDE_COMMANDS:
                continue
            steps = {s["step"]: s for s in v["figures"]["steps"]}
            commands = [s for s in steps.values() if s.get("command", "").startswith("docker service")]
            assert commands and all(s["ok"] for s in commands), (name, commands)  # each ran and converged
        scale = verdicts["test_citus_swarm_scale_out"]["figures"]
        assert scale["placements_after"].get("5"), scale  # the new worker took shards
        assert scale["scale_down_removed_slots"] == [5], scale
        assert not scale["placements_final"].get("5"), scale
        # a worker's host crashed: its workers ran again on the other hosts, their groups' writes came back
        host = verdicts["test_node_crash_worker"]["figures"]
        assert host["swarm_detect_s"] is not None
        assert set(host["worker_reached_after_s"]) == set(host["workers_on_node"]), host
        assert host["node"] not in host["workers_now_on"].values(), host
        assert all(host["write_rto_by_group_s"][str(g)] is not None for g in host["hit_groups"]), host
        # the links are the cluster's: cutting a worker's link cut what Citus uses, and the alert saw it
        link = verdicts["test_citus_worker_link"]
        assert link["detection"]["expectations"][0]["alerts"]["WorkerUnreachable"]["fired"], link["detection"]
    finally:
        left = ours_left(client)
        if left:  # clean up this test's nodes only (never `gc --all`), then fail
            remove_project_resources(client, STACK)
            for mount in volumes.mounts_under(Path(STATE_DIR)):
                volumes.unmount(mount)
    assert not left, f"left behind: {left}"
    assert swarm_state(client)["state"] == before["state"], "the engine's own swarm state changed"
