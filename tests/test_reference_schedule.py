"""The variants gate's fault schedule (tests/schedules.py) on the session's own stack, both
sides of it: the reference config keeps every acknowledged write, and the same stack with
the async-replication variant's Patroni settings loses some.

async-replication changes nothing but Patroni's dynamic configuration (``bootstrap.dcs``,
which a running cluster takes from the DCS: ``PATCH /config``), so it is applied to the
session's stack and reverted afterwards instead of provisioning a stack of its own; the
test checks first that the variant's file differs from the reference there only. The
variants that change what a running stack cannot take live (HAProxy, alert rules,
pg_hba) are provisioned on stacks of their own (tests/test_variants_gate.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from schedules import cut_replication_then_kill_leader, fault_rto

from harness.scenario import verdict_message
from harness.stack import Stack
from harness.stack.spec import COMPOSE_DIR
from harness.stack.steady_state import wait_for_steady_state
from harness.stack.topology import discover

pytestmark = pytest.mark.docker

VARIANT = "async-replication"


def test_reference_keeps_every_write_on_the_same_schedule(pgchaos_stack, tmp_path: Path) -> None:
    verdict = cut_replication_then_kill_leader(pgchaos_stack, "cut-then-kill-reference", tmp_path).verdict
    message = verdict_message(verdict)
    assert verdict["verdict"] == "unjudged", message  # no target row: nothing failed
    assert {f["severity"] for f in verdict["findings"]} <= {"unjudged", "note"}, message
    assert verdict["rpo"]["lost"] == 0, message
    # Recovered, and reported; not held to the hard-kill waiver's bound: the leader dies with its
    # synchronous standby's WAL stream blackholed, so the standby is promoted only after it has
    # given up on the dead leader's stream (seen: 5.4 s after the key expired, 25.4 s in all,
    # against 0.7 s after a plain hard kill) — a different case from the waiver's.
    rto = fault_rto(verdict, "kill")
    assert rto is not None, message


def dynamic_change(variant: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the variant's settings, the reference's) where the variant's patroni.yml differs
    from the reference's; fails unless every difference is under ``bootstrap.dcs``."""
    ref = yaml.safe_load((COMPOSE_DIR / "config" / "patroni.yml").read_text())
    var = yaml.safe_load((COMPOSE_DIR / "variants" / variant / "patroni.yml").read_text())
    ref_dcs, var_dcs = ref["bootstrap"].pop("dcs"), var["bootstrap"].pop("dcs")
    assert var == ref, f"{variant} changes more than Patroni's dynamic configuration: provision it instead"
    changed = {k: v for k, v in var_dcs.items() if ref_dcs.get(k) != v}
    assert changed and set(changed) <= set(ref_dcs), (changed, ref_dcs)
    return changed, {k: ref_dcs[k] for k in changed}


def patch_config(stack: Stack, settings: dict[str, Any]) -> None:
    """PATCH Patroni's /config through the first member that takes it."""
    errors = []
    for member in stack.manifest.coordinator.members:
        try:
            resp = requests.patch(f"{stack.patroni_url(member)}/config", json=settings, timeout=5)
            if resp.ok:
                return
            errors.append(f"{member}: {resp.status_code} {resp.text[:120]}")
        except requests.RequestException as exc:
            errors.append(f"{member}: {exc}")
    raise AssertionError(f"no member took {settings}: {errors}")


@pytest.fixture
def async_replication(pgchaos_stack: Stack) -> Iterator[Stack]:
    """The session's stack with the variant's dynamic settings, the reference's put back after
    (and the steady state, synchronous standby included, back before the next test)."""
    changed, reference = dynamic_change(VARIANT)
    assert changed == {"synchronous_mode": False}, changed  # what the wait below knows to wait for
    patch_config(pgchaos_stack, changed)
    try:
        deadline = time.monotonic() + 30
        while any(m.role == "sync_standby" for m in discover(pgchaos_stack).members):  # the leader lets go
            assert time.monotonic() < deadline, "synchronous_mode: false not applied within 30 s"
            time.sleep(0.5)
        yield pgchaos_stack
    finally:
        patch_config(pgchaos_stack, reference)
        state = wait_for_steady_state(pgchaos_stack, timeout=120)
        assert state.healthy, f"the session's stack after reverting {VARIANT}: {state.summary()}"


def test_async_replication_loses_acknowledged_writes(async_replication: Stack, tmp_path: Path) -> None:
    run = cut_replication_then_kill_leader(async_replication, "cut-then-kill-async-replication", tmp_path)
    verdict = run.verdict
    message = verdict_message(verdict)
    assert verdict["verdict"] == "fail", message
    assert verdict["rpo"]["lost"] > 0, message
    assert any("acknowledged write(s) lost" in r for r in verdict["reasons"]), message
    # every lost write was acknowledged while the link was cut: the async window, nothing older
    assert verdict["rpo"]["window_s"] == 0, message
