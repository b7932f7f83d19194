"""``run-info.json`` of a run: the stack it tested and the machine it ran on.

Written once per session beside summary.json; the certification page shows
it in its header and the trend page marks a config change where
``config_hash`` (the manifest, its config folder and the variant's files) differs
from the run before.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Final

RUN_INFO: Final = "run-info.json"


def memory_bytes() -> int | None:
    """Physical memory of this machine (Linux ``/proc/meminfo``), None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine() -> dict[str, Any]:
    """Hostname, cores, memory, kernel and Python of this machine."""
    return {"hostname": socket.gethostname(), "cores": os.cpu_count(), "memory_bytes": memory_bytes(),
            "kernel": platform.release(), "python": platform.python_version()}


def _files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
    return out


def config_hash(paths: list[Path]) -> str | None:
    """sha256 (12 hex digits) over the files under ``paths``, by relative name and content."""
    files = _files(paths)
    if not files:
        return None
    digest = hashlib.sha256()
    for f in files:
        base = next((p for p in paths if f == p or p in f.parents), f.parent)
        digest.update(str(f.relative_to(base.parent)).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def git_revision(where: Path, paths: list[Path]) -> dict[str, Any] | None:
    """The commit checked out at ``where``, the last commit that changed ``paths`` and whether
    they differ from it (uncommitted changes); None outside git."""
    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True,
                                  timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "--short=12", "HEAD")
    if not commit:
        return None
    present = [str(p) for p in paths if p.exists()]
    status = git("status", "--porcelain", "--", *present)
    changed = git("log", "-1", "--format=%h", "--abbrev=12", "--", *present)
    return {"commit": commit, "config_commit": changed or None, "dirty": bool(status)}


def stack_info(spec: Any) -> dict[str, Any]:
    """Manifest, profile, engine, variant, config hash, git revision and host ports of a StackSpec."""
    try:
        manifest = spec.manifest
        paths = [manifest.path]
        if manifest.config_dir:
            paths.append(manifest.dir / manifest.config_dir)
        if spec.variant_dir is not None:
            paths.append(spec.variant_dir)
        name, path = manifest.name, str(manifest.path)
    except Exception:  # an unreadable manifest: the session reported it already
        paths, name, path = [Path(spec.manifest_file)], None, str(spec.manifest_file)
    return {"manifest": name, "manifest_path": path, "profile": spec.profile, "engine": spec.engine,
            "variant": spec.variant, "attached": spec.attach is not None,
            "config_hash": config_hash(paths), "git": git_revision(paths[0].parent, paths),
            "ports": dict(vars(spec.ports)) if hasattr(spec, "ports") else None}


def write_run_info(run_dir: Path, spec: Any) -> Path:
    """Write ``run-info.json`` (stack, machine, time) into ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    doc = {"run": run_dir.name, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "stack": stack_info(spec), "machine": machine()}
    path = run_dir / RUN_INFO
    path.write_text(json.dumps(doc, indent=2, default=str))
    return path


def read_run_info(run_dir: Path) -> dict[str, Any]:
    """The run's ``run-info.json``, or {} when it has none (runs written before it existed)."""
    try:
        doc = json.loads((Path(run_dir) / RUN_INFO).read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}
