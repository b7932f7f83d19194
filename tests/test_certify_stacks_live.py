"""The scenario catalogue through the user's flow, `pgchaos certify --stacks 2`: two reference
stacks at once, each running its part, one merged report, nothing left behind.

This is how the live session runs the catalogue (conftest.py: the scenarios are marked
``catalogue`` and left out of ``-m live``): every scenario is judged as it is on one stack,
and a failing verdict fails this test with the scenario's reasons, as it would fail the
scenario's own test; a marginal verdict passes, as it does there. Ports and state folder of
its own (the defaults moved by 16000, part 2 by 17000); the report goes under ./reports,
where CI keeps its runs for the trend page."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from harness.engines.base import STATE_LABEL
from harness.split import PORT_STEP
from harness.stack.spec import shifted_ports
from harness.verdict import EXIT_MARGINAL, EXIT_PASS, FAILING

pytestmark = [pytest.mark.own_stack]
STATE_DIR = Path("/var/lib/pgchaos-stacks-ci")
ENV = {**shifted_ports(16000), "PGCHAOS_STATE_DIR": str(STATE_DIR)}
REPO = Path(__file__).resolve().parents[1]


def _left(client: docker.DockerClient) -> dict[str, list[str]]:
    """Containers, networks and volumes labelled with this test's state folder; loop mounts under it."""
    label = {"label": f"{STATE_LABEL}={STATE_DIR}"}
    return {kind: names for kind, names in (
        ("containers", [c.name for c in client.containers.list(all=True, filters=label, ignore_removed=True)]),
        ("networks", [n.name for n in client.networks.list(filters=label)]),
        ("volumes", [v.name for v in client.volumes.list(filters=label)]),
        ("mounts", [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                    if line.split()[1].startswith(f"{STATE_DIR}/")])) if names}


def _started(run: Path) -> float:
    """A part's session start, from its run folder's name (YYYYmmdd-HHMMSS, local time)."""
    return datetime.datetime.strptime(run.name[:15], "%Y%m%d-%H%M%S").timestamp()


def _catalogue() -> set[str]:
    """The scenario tests the catalogue holds (by name, as the reports call them)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                           str(REPO / "scenarios")], capture_output=True, text=True, cwd=REPO, check=False)
    return {line.split("::")[-1] for line in proc.stdout.splitlines() if "::" in line}


def test_the_catalogue_certified_over_two_stacks_at_once() -> None:
    reports = Path.cwd() / "reports"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "certify", "--stacks", "2",
                           "--reports-dir", str(reports)],
                          env={**os.environ, **ENV}, capture_output=True, text=True, timeout=840, check=False)
    out = proc.stdout + proc.stderr
    base = re.search(r"^reports: (.+)$", proc.stdout, re.M)
    assert base, out[-4000:]
    rep = Path(base[1]) / "rep-1"
    (merged,) = [d for d in rep.iterdir() if d.is_dir() and d.name != "stacks"]
    rows = json.loads((merged / "summary.json").read_text())
    failing = [f"{r['scenario']}: {r['verdict']}: {r.get('reason')}" for r in rows if r["verdict"] in FAILING]
    assert not failing, "\n".join(failing) + "\n" + out[-3000:]
    assert proc.returncode in (EXIT_PASS, EXIT_MARGINAL), out[-4000:]
    # a row for every scenario of the catalogue; what did not run names what the stack lacks
    assert len(rows) == len({r["scenario"] for r in rows}) == len(_catalogue()), rows
    skipped = [r for r in rows if r["verdict"] == "skipped"]
    assert all(str(r.get("reason")).startswith("the stack (reference) lacks: ") for r in skipped), skipped
    assert len(rows) - len(skipped) >= 15, rows  # the reference runs 17 of them today
    # two parts, each with scenarios it ran, at once
    parts = [next((rep / "stacks" / str(k)).glob("*/summary.json")).parent for k in (1, 2)]
    ran = [[r["scenario"] for r in json.loads((p / "summary.json").read_text()) if r["verdict"] != "skipped"]
           for p in parts]
    assert all(ran) and not set(ran[0]) & set(ran[1]), ran
    ends = [(p / "summary.json").stat().st_mtime for p in parts]
    assert _started(parts[0]) <= ends[1] and _started(parts[1]) <= ends[0], (parts, ends)
    # part 2 on the ports of part 1 moved by PORT_STEP
    ports = [json.loads((p / "run-info.json").read_text())["stack"]["ports"] for p in parts]
    assert ports[0]["pgbouncer"] == int(ENV["PGCHAOS_PGBOUNCER_PORT"])
    assert all(ports[1][name] == port + PORT_STEP for name, port in ports[0].items()), ports
    # one report: the page over both parts, each scenario's folder reachable from it
    assert "2 identical stacks at once" in (merged / "certification.html").read_text()
    assert json.loads((merged / "run-info.json").read_text())["stacks"]["count"] == 2
    assert all((merged / name / "verdict.json").is_file() for name in sum(ran, []))
    assert _left(docker.from_env()) == {}
