"""A manifest for attaching to a deployed swarm stack: the reference stack's groups,
router, pooler, DCS, Toxiproxy and monitoring, plus a `[swarm]` table (shared by the
attach self-tests and the multi-node swarm's live test)."""

from __future__ import annotations

from pathlib import Path

from harness.stack.spec import COMPOSE_DIR


def attach_manifest(folder: Path, stack: str, managers: list[str], nodes: dict[str, str],
                    ports: dict[str, int]) -> Path:
    """`folder/pgchaos.toml`: the reference manifest from `[database]` on (its files named by
    absolute path, no loop volumes, tools or guide tables: an attached stack is not ours)
    and `[swarm]` naming `stack`, its managers, nodes and 127.0.0.1 ports."""
    reference = (COMPOSE_DIR / "pgchaos.toml").read_text()
    body = reference[reference.index("[database]"):].replace('setup_sql = "sql/',
                                                              f'setup_sql = "{COMPOSE_DIR}/sql/')
    lines = ["[stack]", f'name = "attached-{stack}"', f'compose_files = ["{COMPOSE_DIR}/docker-compose.yml"]',
             "", body, "[swarm]", f'stack = "{stack}"',
             "managers = [" + ", ".join(f'"{m}"' for m in managers) + "]", "", "[swarm.nodes]",
             *(f'{name} = "{url}"' for name, url in nodes.items()), "", "[swarm.ports]",
             *(f'"{key}" = {port}' for key, port in ports.items()), ""]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pgchaos.toml"
    path.write_text("\n".join(lines))
    return path
