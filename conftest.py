"""The repository's own suite in three sessions (README, "Tests"; `.ci/run`):

- ``unit``: needs no stack (self-tests on synthetic histories, the CLI's bad input, the
  report, the wheel); CPU-bound, so it runs in parallel (``-n 2``);
- ``live``: the session's stack and the tests that build stacks of their own (marked
  ``docker`` or ``own_stack``); one at a time, since a second stack's load on 2 cores
  stalls commits that the RTO checker rightly counts;
- ``swarm``: turns the engine into a swarm and back; on its own (``-m swarm tests``).

Every test gets exactly one of ``unit`` or ``live`` unless it is marked ``swarm``, so the
three sessions run each test once and together run every test.

The tests that build stacks of their own (``own_stack``) and do not use the session's run
first, in their files' order: the session's stack is brought up by the first test that
asks for it, so it does not sit idle beside theirs (its Patroni loops, etcd and 1 s
scrapes take about a third of a core).
"""

from __future__ import annotations

import pytest

from harness.plugin import SCENARIO_FIXTURES

LIVE_MARKS = ("docker", "own_stack")
STACK_FIXTURES = SCENARIO_FIXTURES | {"pgchaos_stack"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "unit: needs no stack; run in parallel (-m unit -n 2)")
    config.addinivalue_line("markers", "live: uses the session's stack or stacks of its own (-m live)")


@pytest.hookimpl(tryfirst=True)  # before -m selects on them
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("swarm") is not None:
            continue
        if any(item.get_closest_marker(m) is not None for m in LIVE_MARKS):
            item.add_marker(pytest.mark.live)
            continue
        uses = STACK_FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses:  # it would bring a stack up inside the parallel session
            raise pytest.UsageError(f"{item.nodeid} uses {', '.join(sorted(uses))} but is not marked docker")
        item.add_marker(pytest.mark.unit)
    items.sort(key=_stacks_first)  # stable: within each kind, the files' order


def _stacks_first(item: pytest.Item) -> tuple[bool, bool]:
    """Tests with stacks of their own only, then those also using the session's, then the rest."""
    return (item.get_closest_marker("own_stack") is None,
            bool(STACK_FIXTURES & set(getattr(item, "fixturenames", ()))))
