"""Loop-mounted ext4 data volumes: a size-limited file per node, mounted on
the host and bind-mounted into the container, so a full disk is a real
ENOSPC and data survives container restarts."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

from harness.errors import PgchaosError

POSTGRES_UID = 999  # fixed in compose/images/postgres/Dockerfile


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True)


def is_mounted(mountpoint: Path) -> bool:
    target = str(mountpoint.resolve())
    with open("/proc/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts)


def create(image: Path, mountpoint: Path, size_mb: int) -> None:
    """Create (if absent) and mount one ext4 image; idempotent."""
    image.parent.mkdir(parents=True, exist_ok=True)
    mountpoint.mkdir(parents=True, exist_ok=True)
    if not image.exists():
        with open(image, "wb") as f:
            f.truncate(size_mb * 1024 * 1024)
        # -m 0: no blocks reserved for root, so PostgreSQL sees the whole volume.
        proc = _run(["mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=1", str(image)])
        if proc.returncode != 0:
            raise PgchaosError(f"mkfs.ext4 {image} failed: {proc.stderr.strip()}")
    if not is_mounted(mountpoint):
        proc = _run(["mount", "-o", "loop", str(image), str(mountpoint)])
        if proc.returncode != 0:
            raise PgchaosError(f"mount -o loop {image} failed: {proc.stderr.strip()}")
    os.chown(mountpoint, POSTGRES_UID, POSTGRES_UID)
    mountpoint.chmod(0o700)


def unmount(mountpoint: Path) -> None:
    """Unmount (lazily if busy) and remove the empty mount point; never raises."""
    if is_mounted(mountpoint) and _run(["umount", str(mountpoint)]).returncode != 0:
        _run(["umount", "-l", str(mountpoint)])
    if mountpoint.exists():
        with contextlib.suppress(OSError):
            mountpoint.rmdir()


def remove(image: Path, mountpoint: Path) -> None:
    """Unmount and delete one volume; never raises for what is already gone."""
    unmount(mountpoint)
    image.unlink(missing_ok=True)


def mounts_under(root: Path) -> list[Path]:
    """Every mount point below root (for gc)."""
    prefix = str(root.resolve()) + "/"
    with open("/proc/mounts") as mounts:
        return [Path(line.split()[1]) for line in mounts if line.split()[1].startswith(prefix)]
