"""Deployment engines by name: each a package of its own under `harness/engines/`
(its `Deployment`, faults, health checks and garbage collection), loaded when
first named. Adding an engine is one package plus one line here."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from harness.errors import PgchaosError

if TYPE_CHECKING:
    from harness.engines.base import Deployment

ENGINES: Final[dict[str, str]] = {  # name -> its package (which exports ENGINE)
    "compose": "harness.engines.compose",
    "swarm": "harness.engines.swarm",
    "swarm-nodes": "harness.engines.swarm_nodes",
}
DEFAULT_ENGINE: Final = "compose"


def names() -> list[str]:
    return list(ENGINES)


def engine(name: str) -> type[Deployment]:
    """The engine class registered as `name`, or one clear error naming the valid ones."""
    if name not in ENGINES:
        raise PgchaosError(f"unknown engine {name!r}; valid: {', '.join(ENGINES)}")
    cls: type[Deployment] = importlib.import_module(ENGINES[name]).ENGINE
    return cls


def descriptions() -> dict[str, str]:
    return {name: engine(name).description for name in ENGINES}


def register_faults() -> None:
    """Add every engine's own faults (its package's `faults` module, when it has one) to the catalogue."""
    for package in ENGINES.values():
        try:
            importlib.import_module(f"{package}.faults")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.faults":
                raise


def collect_all(everything: bool, progress: Callable[[str], None] = lambda msg: None) -> list[str]:
    """Every engine's own garbage of dead runs (stacks removed, by name)."""
    removed: list[str] = []
    for name in ENGINES:
        removed += engine(name).collect(everything, progress)
    return removed
