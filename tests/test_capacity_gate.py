"""A capacity regression turns the gate red by name: PgBouncer with
max_client_conn 12 / default_pool_size 2 (compose/variants/small-pool)
against the declared profile of 200 clients. The reference stack serves the
same profile in scenarios/test_capacity.py."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from offset_stack import offset_env  # noqa: F401 - fixture

from harness.load.capacity import check_capacity, drive_clients
from harness.scenario import RunOptions, ScenarioRun, verdict_message
from harness.stack import Stack, StackSpec

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("offset_env"), pytest.mark.own_stack]


def test_small_pool_fails_the_capacity_check_by_name(tmp_path: Path) -> None:
    options = RunOptions(reports_dir=tmp_path / "reports", load_users=1)
    with Stack(StackSpec(variant="small-pool")) as stack, \
            ScenarioRun(stack, "capacity-small-pool", None, options) as run:
        clients = stack.manifest.load_clients
        drive_clients(stack.dsn(connect_timeout=10), run.history, clients=clients)
        run.add_check("capacity", functools.partial(check_capacity, clients=clients))
    verdict = run.verdict
    assert verdict is not None
    message = verdict_message(verdict)
    result = verdict["scenario_checks"]["capacity"]
    print(f"small pool: {result['served']}/{result['clients']} served, {result['refused']} refused")
    assert verdict["verdict"] == "fail", message
    assert result["served"] < clients, result
    assert any("declared clients not served" in r and "no more connections allowed" in r
               for r in verdict["reasons"]), message
