"""wait_for_steady_state ends early on a refusal by configuration that keeps being
logged, and only then (synthetic observations; no stack)."""

from __future__ import annotations

import importlib
import itertools
import time
from collections.abc import Callable, Iterator

import pytest

from harness.stack.steady_state import Check, SteadyState, wait_for_steady_state
from harness.stack.topology import Topology

module = importlib.import_module("harness.stack.steady_state")  # the package exports a function of that name
REFUSAL = "coordinator-2 not streaming — {n} FATAL: pg_hba.conf rejects replication connection"


def observations(details: Iterator[str | None]) -> Callable[[object], SteadyState]:
    def observe(stack: object) -> SteadyState:
        detail = next(details)
        checks = [Check("replicas_streaming", detail is None, detail or "2/2 streaming")]
        return SteadyState(checks, Topology())
    return observe


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr(module, "REFUSED_FOR_S", 0.3)
    return monkeypatch


def test_a_refusal_logged_again_and_again_ends_the_wait_early(quick: pytest.MonkeyPatch) -> None:
    quick.setattr(module, "steady_state", observations(REFUSAL.format(n=n) for n in itertools.count()))
    started = time.monotonic()
    state = wait_for_steady_state(object(), timeout=30, interval=0.05)  # type: ignore[arg-type]
    assert not state.healthy and "pg_hba.conf rejects" in state.summary()
    assert time.monotonic() - started < 5


def test_a_stale_refusal_line_waits_out_the_timeout(quick: pytest.MonkeyPatch) -> None:
    quick.setattr(module, "steady_state", observations(itertools.repeat(REFUSAL.format(n=0))))
    started = time.monotonic()
    state = wait_for_steady_state(object(), timeout=1.0, interval=0.05)  # type: ignore[arg-type]
    assert not state.healthy and time.monotonic() - started >= 1.0


def test_a_refusal_that_clears_is_waited_through(quick: pytest.MonkeyPatch) -> None:
    seq = itertools.chain((REFUSAL.format(n=n) for n in range(3)), itertools.repeat(None))
    quick.setattr(module, "steady_state", observations(seq))
    assert wait_for_steady_state(object(), timeout=10, interval=0.05).healthy  # type: ignore[arg-type]
