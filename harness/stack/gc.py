"""Garbage collection: remove what dead runs left behind.

Only things that carry our ownership label (containers, networks, volumes)
and the state folders and loop mounts under the pgchaos state root are ever
touched; a run whose owner process is alive, or a detached stack started with
`pgchaos up`, is left alone unless `everything` is asked for.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from harness.stack import volumes
from harness.stack.stack import (
    OWNER_LABEL,
    PROJECT_LABEL,
    docker_client,
    remove_project_resources,
    runs_dir,
)


@dataclass
class GcReport:
    projects: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.projects and not self.mounts:
            return "gc: nothing to remove" + (f" (kept live runs: {', '.join(self.kept)})" if self.kept else "")
        return (f"gc: removed {len(self.projects)} run(s) {self.projects}, "
                f"{len(self.mounts)} loop mount(s)" + (f"; kept {self.kept}" if self.kept else ""))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _live_runs() -> set[str]:
    """Projects whose owner is alive or which were started detached."""
    live = set()
    if not runs_dir().exists():
        return live
    for meta_path in runs_dir().glob("*/run.json"):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("detached") or (meta.get("owner_pid") != os.getpid()
                                    and _alive(int(meta.get("owner_pid", 0)))):
            live.add(meta["project"])
    return live


def collect(everything: bool = False) -> GcReport:
    """Remove leftovers of dead runs (or of every run with everything=True)."""
    client = docker_client()
    keep = set() if everything else _live_runs()
    report = GcReport(kept=sorted(keep))
    projects = {c.labels.get(PROJECT_LABEL) for c in client.containers.list(
        all=True, filters={"label": f"{OWNER_LABEL}=pgchaos"})}
    projects |= {n.attrs.get("Labels", {}).get(PROJECT_LABEL) for n in client.networks.list(
        filters={"label": f"{OWNER_LABEL}=pgchaos"})}
    if runs_dir().exists():
        projects |= {f"pgchaos-{p.name}" for p in runs_dir().iterdir() if p.is_dir()}
    for project in sorted(p for p in projects if p and p not in keep):
        remove_project_resources(client, project)
        run_dir = runs_dir() / project.removeprefix("pgchaos-")
        for mount in volumes.mounts_under(run_dir):
            volumes.remove(Path("/nonexistent"), mount)
            report.mounts.append(str(mount))
        shutil.rmtree(run_dir, ignore_errors=True)
        report.projects.append(project)
    return report
