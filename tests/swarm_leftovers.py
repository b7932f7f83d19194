"""What of a multi-node swarm test's stack is still on the engine (shared by its live tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.engines.base import PROJECT_LABEL


def stack_left(client: Any, stack: str, state_dir: str) -> dict[str, list[str]]:
    """Containers (by project label or name), networks, volumes and loop mounts of `stack`."""
    label = f"{PROJECT_LABEL}={stack}"
    left: dict[str, list[str]] = {
        "containers": [c.name for c in client.containers.list(all=True, filters={"label": label},
                                                               ignore_removed=True)],
        "named": [c.name for c in client.containers.list(all=True, filters={"name": stack}, ignore_removed=True)],
        "networks": [n.name for n in client.networks.list(filters={"label": label})],
        "volumes": [v.name for v in client.volumes.list(filters={"label": label})],
        "mounts": [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                   if line.split()[1].startswith(state_dir + "/")],
    }
    return {k: v for k, v in left.items() if v}
