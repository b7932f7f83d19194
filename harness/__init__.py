"""pgchaos: chaos and verification harness for a distributed PostgreSQL cluster."""

from __future__ import annotations

from typing import Any

from harness._version import __version__

__all__ = ["__version__", "assert_verdict"]


def assert_verdict(verdict: dict[str, Any] | None) -> None:
    """A scenario passes on `pass`, `marginal` or an explicit, bounded waiver; anything else fails
    (AssertionError naming the verdict, its figures and its reasons).

    Under the pytest plugin a scenario test fails on such a verdict even without
    this call; use it to stop a test at the failing run, or outside pytest."""
    assert verdict is not None, "the scenario produced no verdict"
    from harness.verdict import is_passing

    if not is_passing(verdict["verdict"]):
        from harness.scenario import verdict_message

        raise AssertionError(verdict_message(verdict))
