"""Scenario helpers shared by the scenario modules (`from conftest import assert_verdict`).

`assert_verdict` is the library's (`harness.assert_verdict`); it is re-exported
here so the scenario modules keep their import."""

from __future__ import annotations

from harness import assert_verdict
from harness.checkers.split_brain import split_brain

__all__ = ["add_split_brain_check", "assert_verdict"]


def add_split_brain_check(run) -> None:
    """The split-brain checker over the run's writable-probe samples, its role overlap (two
    primaries, at most one acknowledging) kept as the figure `role_overlap`."""

    def check(ops):
        result = split_brain(ops)
        run.figures["role_overlap"] = result.get("role_overlap")
        return result

    run.add_check("split-brain", check)
