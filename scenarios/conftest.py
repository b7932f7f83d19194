"""Scenario helpers shared by the scenario modules."""

from __future__ import annotations

from typing import Any

from harness.scenario import verdict_message


def assert_verdict(verdict: dict[str, Any] | None) -> None:
    """A scenario passes on `pass` or an explicit, bounded waiver; anything else fails."""
    assert verdict is not None, "the scenario produced no verdict"
    assert verdict["verdict"] in ("pass", "waived"), verdict_message(verdict)
