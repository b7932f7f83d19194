"""Random fault schedules over the live stack (Hypothesis stateful testing).

Rules inject and heal faults on roles; preconditions keep schedules possible
(at most one coordinator-group fault at a time, so a quorum and a leader can
always exist); after every step no two coordinators acknowledge writes; at
the end, after heal-all and the steady state, no acknowledged write is lost.
The seed is printed; `--seed N` replays the same schedule. CI runs a small
budget; `pgchaos soak --minutes N` runs a long one (PGCHAOS_SOAK_MINUTES).
"""

from __future__ import annotations

import os
import random
import time

import hypothesis.core
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from harness.load.writable_probe import WritableProbe
from harness.scenario import RunOptions, ScenarioRun

pytestmark = pytest.mark.docker

NODE_FAULTS = ("kill", "stop", "pause", "pg-kill")
LINK_FAULTS = ("latency", "reset-peer")
ROLES = ("primary", "replica")
LINKS = ("client", "worker-1", "replication")


def make_machine(stack, options: RunOptions, verdicts: list):
    class FaultSchedule(RuleBasedStateMachine):
        """One schedule: a ScenarioRun whose nemesis follows Hypothesis's rules."""

        def __init__(self) -> None:
            super().__init__()
            self.run = ScenarioRun(stack, f"schedule-{len(verdicts) + 1}", None, options, load=False)
            self.run.__enter__()
            self.node_fault = None
            self.link_faults = []
            self.checker = WritableProbe(stack, stack.manifest.coordinator.members, self.run.history)

        @precondition(lambda self: self.node_fault is None)
        @rule(fault=st.sampled_from(NODE_FAULTS), role=st.sampled_from(ROLES),
              hold=st.floats(min_value=2.0, max_value=8.0))
        def node_fault_for_a_while(self, fault, role, hold):
            self.node_fault = self.run.nemesis.inject(fault, role)
            time.sleep(hold)

        @precondition(lambda self: self.node_fault is not None)
        @rule()
        def heal_node_fault(self):
            self.run.nemesis.heal(self.node_fault)
            self.node_fault = None
            time.sleep(2.0)

        @precondition(lambda self: len(self.link_faults) < 2)
        @rule(fault=st.sampled_from(LINK_FAULTS), link=st.sampled_from(LINKS))
        def link_fault(self, fault, link):
            params = {"latency": 150, "jitter": 30} if fault == "latency" else {}
            self.link_faults.append(self.run.nemesis.inject(fault, link, **params))
            time.sleep(2.0)

        @precondition(lambda self: bool(self.link_faults))
        @rule()
        def heal_link_fault(self):
            self.run.nemesis.heal(self.link_faults.pop())

        @invariant()
        def never_two_acknowledging_primaries(self):
            states = {n: self.checker._state(n) for n in self.run.stack.manifest.coordinator.members}
            acknowledging = [n for n, s in states.items() if s == "ack"]
            assert len(acknowledging) <= 1, f"split brain: {states}"

        def teardown(self):
            self.run.__exit__(None, None, None)  # heal-all, steady state, final read, verdict
            verdict = self.run.verdict or {}
            verdicts.append(verdict)
            assert verdict.get("rpo", {}).get("lost") == 0, verdict.get("reasons")
            assert verdict.get("steady_state", {}).get("after"), verdict.get("reasons")

    return FaultSchedule


def test_random_fault_schedules(pgchaos_stack, pgchaos_options, pytestconfig):
    seed = pytestconfig.getoption("pgchaos_seed")
    seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
    print(f"\npgchaos fault schedule seed: {seed} (replay with --seed {seed})")
    soak_minutes = float(os.environ.get("PGCHAOS_SOAK_MINUTES", "0"))
    budget = settings(
        max_examples=int(os.environ.get("PGCHAOS_SCHEDULES", "1")) if not soak_minutes else 10_000,
        stateful_step_count=4 if not soak_minutes else 8,
        deadline=None, database=None, phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    verdicts: list = []
    previous = hypothesis.core.global_force_seed
    hypothesis.core.global_force_seed = seed
    try:
        machine = make_machine(pgchaos_stack, pgchaos_options, verdicts)
        if soak_minutes:
            deadline = time.monotonic() + soak_minutes * 60
            while time.monotonic() < deadline:
                run_state_machine_as_test(machine, settings=settings(budget, max_examples=1))
                hypothesis.core.global_force_seed = seed = (seed + 1) % 2**32
        else:
            run_state_machine_as_test(machine, settings=budget)
    finally:
        hypothesis.core.global_force_seed = previous
    print(f"schedules run: {len(verdicts)}; verdicts: {[v.get('verdict') for v in verdicts]}")
    assert verdicts, "no schedule ran"
