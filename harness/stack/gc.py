"""Garbage collection: remove what dead runs left behind.

Only things that carry our ownership label (containers, networks, volumes)
and the state folders and loop mounts under the pgchaos state root are ever
touched. A run is live while its owner process is alive, or when it was
started detached (`pgchaos up`); live runs are kept unless `everything`
is asked for. Liveness is read from the containers' own labels, so runs of
another state folder are judged correctly too.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import engines
from harness.engines.base import (
    DETACHED_LABEL,
    OWNER_LABEL,
    PID_LABEL,
    PROJECT_LABEL,
    STATE_LABEL,
    docker_client,
    is_ours,
    pid_alive,
    remove_project_resources,
)
from harness.stack import volumes
from harness.stack.runs import OWNER_FILE, runs_dir, state_root

__all__ = ["GcReport", "collect", "leaked_mounts", "liveness", "pid_alive"]


UNCLAIMED_GRACE_S = 30.0  # a run folder made, its owner file not yet written


@dataclass
class GcReport:
    projects: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        kept = f"; kept live runs: {', '.join(self.kept)}" if self.kept else ""
        if not self.projects and not self.mounts:
            return "gc: nothing to remove" + kept
        return (f"gc: removed {len(self.projects)} run(s) {self.projects}, "
                f"{len(self.mounts)} loop mount(s){kept}")


def _is_live(pid: int, detached: bool) -> bool:
    return detached or pid_alive(pid)


def _state_runs() -> dict[str, bool]:
    """Project -> live, for the runs of this state folder."""
    found: dict[str, bool] = {}
    if not runs_dir().exists():
        return found
    for run in runs_dir().iterdir():
        meta_path = run / "run.json"
        try:
            meta = json.loads(meta_path.read_text())
            found[meta["project"]] = _is_live(int(meta.get("owner_pid", 0)), bool(meta.get("detached")))
        except (OSError, ValueError, KeyError):  # no run.json yet, or a broken one
            found[f"pgchaos-{run.name}"] = _being_set_up(run)
    return found


def _being_set_up(run: Path) -> bool:
    """A run folder without a readable run.json is live while the process that claimed it
    runs (another run starting at this moment), and for a few seconds after its creation
    when not even claimed yet; else it is a dead run's leftover."""
    try:
        return pid_alive(int((run / OWNER_FILE).read_text()))
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            return time.time() - run.stat().st_mtime < UNCLAIMED_GRACE_S
        return False


def liveness(client: Any, elsewhere: set[str] | None = None) -> dict[str, bool]:
    """Project -> live, for every run of this state folder and every project
    whose containers or networks carry our ownership label. Projects whose
    containers or networks name another state folder are added to `elsewhere`."""
    live = _state_runs()
    containers = client.containers.list(all=True, filters={"label": f"{OWNER_LABEL}=pgchaos"},
                                        ignore_removed=True)
    networks = client.networks.list(filters={"label": f"{OWNER_LABEL}=pgchaos"})
    # A network carries the run's labels as its containers do, and alone it is a run that is
    # starting (compose makes the network first) or one whose containers are gone: its owner
    # says which. (Taken for dead, a starting run of another state folder lost its containers
    # as compose made them: "No such container".)
    for labels in [c.labels for c in containers] + [n.attrs.get("Labels") or {} for n in networks]:
        project = labels.get(PROJECT_LABEL)
        if not project or not is_ours(labels):  # e.g. someone's container of a pgchaos image
            continue
        if elsewhere is not None and labels.get(STATE_LABEL) not in (None, str(state_root())):
            elsewhere.add(project)
        alive = _is_live(int(labels.get(PID_LABEL, "0") or 0), labels.get(DETACHED_LABEL) == "true")
        live[project] = live.get(project, False) or alive
    return live


def _run_dirs() -> dict[str, Path]:
    """Project -> its run folder (a swarm run's project is its stack name, not pgchaos-RUN)."""
    out: dict[str, Path] = {}
    if runs_dir().exists():
        for run in runs_dir().iterdir():
            with contextlib.suppress(OSError, ValueError, KeyError):
                out[json.loads((run / "run.json").read_text())["project"]] = run
    return out


def collect(everything: bool = False) -> GcReport:
    """Remove leftovers of dead runs (or of every run with everything=True)."""
    client = docker_client()
    report = GcReport()
    report.projects += engines.collect_all(everything)  # engines' own (e.g. Swarm stacks), before their mounts go
    dirs = _run_dirs()
    elsewhere: set[str] = set()
    for project, alive in sorted(liveness(client, elsewhere).items()):
        if alive and (not everything or (project in elsewhere and project not in dirs)):
            report.kept.append(project)  # with --all too: a live run of another state folder is not ours
            continue
        remove_project_resources(client, project)
        run_dir = dirs.get(project, runs_dir() / project.removeprefix("pgchaos-"))
        for mount in volumes.mounts_under(run_dir):
            volumes.unmount(mount)
            report.mounts.append(str(mount))
        shutil.rmtree(run_dir, ignore_errors=True)
        report.projects.append(project)
    return report


def leaked_mounts() -> list[str]:
    """Loop mounts under this state folder that belong to no live run (CI's
    last check: a live stack of someone else's is not a leak)."""
    dirs = _run_dirs()
    live = {dirs[p].name if p in dirs else p.removeprefix("pgchaos-")
            for p, alive in liveness(docker_client()).items() if alive}
    root = runs_dir()
    return [str(m) for m in volumes.mounts_under(root)
            if m.resolve().relative_to(root.resolve()).parts[0] not in live]
