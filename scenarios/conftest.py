"""Scenario helpers shared by the scenario modules (`from conftest import assert_verdict`).

`assert_verdict` is the library's (`harness.assert_verdict`); it is re-exported
here so the scenario modules keep their import."""

from __future__ import annotations

from harness import assert_verdict

__all__ = ["assert_verdict"]
