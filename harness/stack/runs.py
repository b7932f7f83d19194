"""The state folder ($PGCHAOS_STATE_DIR, default /var/lib/pgchaos) and the runs it records:
one folder per provisioned run (`runs/RUN/run.json`: project, owner, folder, manifest,
ports), and the faults injected into attached projects (`attached/PROJECT`)."""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

STATE_ROOT = Path(os.environ.get("PGCHAOS_STATE_DIR", "/var/lib/pgchaos"))

def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def state_root() -> Path:
    """The state folder ($PGCHAOS_STATE_DIR, default /var/lib/pgchaos)."""
    return STATE_ROOT


def runs_dir() -> Path:
    return STATE_ROOT / "runs"


def caller() -> dict[str, Any]:
    """Who starts a stack: the user and the folder `pgchaos up` ran in. "The current
    stack" of a command without --run-id is the caller's own, never someone else's."""
    try:
        cwd = str(Path.cwd())
    except OSError:  # the folder was removed under us
        cwd = ""
    return {"owner_uid": os.getuid(), "owner_cwd": cwd}


def is_callers(meta: dict[str, Any]) -> bool:
    me = caller()
    return meta.get("owner_uid") == me["owner_uid"] and meta.get("owner_cwd") == me["owner_cwd"]


def run_metas() -> list[tuple[Path, dict[str, Any] | None]]:
    """Every run.json of the state folder, oldest first, with its content (None: unreadable)."""
    out: list[tuple[Path, dict[str, Any] | None]] = []
    for path in sorted(runs_dir().glob("*/run.json")) if runs_dir().exists() else []:
        try:
            meta = json.loads(path.read_text())
            out.append((path, meta if isinstance(meta, dict) else None))
        except (OSError, ValueError):
            out.append((path, None))
    return out


def own_runs() -> list[str]:
    """Run ids of the caller's stacks (same user, same folder), oldest first."""
    return [path.parent.name for path, meta in run_metas() if meta is not None and is_callers(meta)]


def describe_run(meta: dict[str, Any] | None, run_id: str) -> str:
    """One line about a run for machine-wide listings: id, project, owner, folder, manifest."""
    if meta is None:
        return f"{run_id}: unreadable run.json (remove it with `pgchaos gc`)"
    uid = meta.get("owner_uid")
    owner = "?" if uid is None else ("you" if uid == os.getuid() else f"uid {uid}")
    return (f"{run_id}: project {meta.get('project', '?')}, started by {owner} in "
            f"{meta.get('owner_cwd') or '?'}, manifest {meta.get('manifest') or '?'}")


def attached_state_dir(project: str) -> Path:
    """Where the game-day faults injected into an attached project are remembered."""
    return STATE_ROOT / "attached" / project


OWNER_FILE = "owner.pid"  # written first in a new run folder: whose it is until run.json exists


def write_atomically(path: Path, text: str) -> None:
    """Write a file that readers see whole or not at all (another process may read it meanwhile)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def claim(folder: Path) -> None:
    """Mark a new run folder as this process's, before anything else goes into it: a `gc` of
    another process starting at the same moment must not take it for a dead run's leftover."""
    write_atomically(folder / OWNER_FILE, str(os.getpid()))

