"""The repository's own suite in four sessions (README, "Tests"; `.ci/run`):

- ``unit``: needs no stack (self-tests on synthetic histories, the CLI's bad input, the
  report, the wheel); CPU-bound, so it runs in parallel (``-n 2``);
- ``beside``: tests with stacks of their own whose assertions hold on a busy machine
  (nothing left behind, one-line errors, what a host crash must show whatever its RTO):
  they run in parallel, a file per worker (``-n 2 --dist loadfile --no-loadscope-reorder``),
  dealt out by ``beside(weight=N)``, each file on ports of its own; CI runs them beside the
  unit session;
- ``live``: the session's stack and the other tests that build stacks of their own
  (marked ``docker`` or ``own_stack``); one at a time, since a second stack's load on 2
  cores stalls commits that the RTO checker rightly counts;
- ``swarm``: turns the engine into a swarm and back; on its own (``-m swarm tests``);
- ``catalogue``: the scenarios under ``scenarios/``. The live session runs them all through
  the user's flow instead, `pgchaos certify --stacks 2` (tests/test_certify_stacks_live.py:
  two reference stacks at once, every scenario judged as on one, no failing verdict);
  ``python3 -m pytest scenarios`` still runs them one by one on one stack.

Every test gets exactly one of ``unit``, ``beside``, ``live`` or ``catalogue`` unless it is
marked ``swarm``, so the sessions run each test once and together run every test.

The tests that build stacks of their own (``own_stack``) and do not use the session's run
first, in their files' order: the session's stack is brought up by the first test that
asks for it, so it does not sit idle beside theirs (its Patroni loops, etcd and 1 s
scrapes take about a third of a core).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

from harness.plugin import SCENARIO_FIXTURES

# Hypothesis's per-example deadline is a timed test: the unit session shares 2 cores with
# stacks (CI runs it beside the `beside` session), where one example took 466 ms of 200.
# Speed is the benchmarks' business (tests/bench_*.py), never a self-test's verdict.
settings.register_profile("pgchaos-suite", deadline=None)
settings.load_profile("pgchaos-suite")

LIVE_MARKS = ("docker", "own_stack")
CATALOGUE = Path(__file__).resolve().parent / "scenarios"
STACK_FIXTURES = SCENARIO_FIXTURES | {"pgchaos_stack"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "unit: needs no stack; run in parallel (-m unit -n 2)")
    config.addinivalue_line("markers", "live: uses the session's stack or stacks of its own (-m live)")
    config.addinivalue_line("markers", "catalogue: a scenario of scenarios/; -m live runs them all through "
                                       "pgchaos certify --stacks 2 (tests/test_certify_stacks_live.py)")
    config.addinivalue_line("markers", "beside: stacks of its own, verdicts that hold on a busy machine: runs "
                                       "beside the unit session (-m beside -n 2 --dist loadfile "
                                       "--no-loadscope-reorder); beside(weight=N): the order files are dealt out")


@pytest.hookimpl(tryfirst=True)  # before -m selects on them
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("swarm") is not None or item.get_closest_marker("beside") is not None:
            continue
        if item.path.is_relative_to(CATALOGUE):
            item.add_marker(pytest.mark.catalogue)
            continue
        if any(item.get_closest_marker(m) is not None for m in LIVE_MARKS):
            item.add_marker(pytest.mark.live)
            continue
        uses = STACK_FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses:  # it would bring a stack up inside the parallel session
            raise pytest.UsageError(f"{item.nodeid} uses {', '.join(sorted(uses))} but is not marked docker")
        item.add_marker(pytest.mark.unit)
    items.sort(key=_stacks_first)  # stable: within each kind, the files' order


def _stacks_first(item: pytest.Item) -> tuple[int, bool, bool]:
    """The `beside` tests by weight, heaviest first: xdist deals the files out in this order,
    two to each worker at the start (with two workers: the 1st and 3rd to one, the 2nd to
    the other — so the weights pair short files against the long one); then tests with
    stacks of their own only, then those also using the session's, then the rest."""
    beside = item.get_closest_marker("beside")
    weight = int(beside.kwargs.get("weight", 1)) if beside is not None else 0
    return (-weight, item.get_closest_marker("own_stack") is None,
            bool(STACK_FIXTURES & set(getattr(item, "fixturenames", ()))))
