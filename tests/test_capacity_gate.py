"""A capacity regression turns the gate red by name: PgBouncer with
max_client_conn 12 / default_pool_size 2 (compose/variants/small-pool)
against the declared profile of 200 clients. The reference stack serves the
same profile in scenarios/test_capacity.py.

small-pool changes nothing but settings PgBouncer takes on RELOAD, so it is
applied to the session's stack (the variant's pgbouncer.ini written over the
run's copy, which the container mounts, then RELOAD; SHOW CONFIG must show every
changed setting) and the reference's put back afterwards, instead of
provisioning a stack of its own."""

from __future__ import annotations

import configparser
import functools
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from harness.load.capacity import check_capacity, drive_clients
from harness.scenario import RunOptions, ScenarioRun, verdict_message
from harness.stack import Stack
from harness.stack.spec import COMPOSE_DIR
from harness.stack.steady_state import wait_for_steady_state

pytestmark = pytest.mark.docker

VARIANT = "small-pool"


def pgbouncer_settings(text: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return dict(parser["pgbouncer"])


def sections(text: str) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return {name: dict(parser[name]) for name in parser.sections() if name != "pgbouncer"}


def reload_pgbouncer(stack: Stack, want: dict[str, str]) -> None:
    """RELOAD, then wait (bounded) until SHOW CONFIG shows every setting of ``want``."""
    assert stack.manifest.pooler is not None
    dsn = stack.dsn(dbname=stack.manifest.pooler.admin_db, connect_timeout=3)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("RELOAD")
    deadline = time.monotonic() + 15
    while True:
        with psycopg.connect(dsn, autocommit=True) as conn:
            shown = {row[0]: str(row[1]) for row in conn.execute("SHOW CONFIG").fetchall()}
        if all(shown.get(k) == v for k, v in want.items()):
            return
        assert time.monotonic() < deadline, f"PgBouncer did not take {want} on RELOAD: " + str(
            {k: shown.get(k) for k in want})
        time.sleep(0.5)


@pytest.fixture
def small_pool(pgchaos_stack: Stack) -> Iterator[Stack]:
    """The session's stack with the variant's pgbouncer.ini, reloaded; the reference's after."""
    run_copy = Path(pgchaos_stack.config_dir) / "pgbouncer.ini"
    reference = run_copy.read_text()
    variant = (COMPOSE_DIR / "variants" / VARIANT / "pgbouncer.ini").read_text()
    assert reference == (COMPOSE_DIR / "config" / "pgbouncer.ini").read_text(), "not the reference's config"
    ref, var = pgbouncer_settings(reference), pgbouncer_settings(variant)
    assert set(ref) == set(var), "the variant adds or removes settings: provision it instead"
    assert sections(reference) == sections(variant), "the variant changes more than [pgbouncer]"
    changed = {k: v for k, v in var.items() if ref[k] != v}
    assert changed == {"max_client_conn": "12", "default_pool_size": "2"}, changed  # both taken on RELOAD
    with run_copy.open("w") as f:  # in place: the container mounts this very file
        f.write(variant)
    try:
        reload_pgbouncer(pgchaos_stack, changed)
        yield pgchaos_stack
    finally:
        with run_copy.open("w") as f:
            f.write(reference)
        reload_pgbouncer(pgchaos_stack, {k: ref[k] for k in changed})
        state = wait_for_steady_state(pgchaos_stack, timeout=60)
        assert state.healthy, f"the session's stack after reverting {VARIANT}: {state.summary()}"


def test_small_pool_fails_the_capacity_check_by_name(small_pool: Stack, tmp_path: Path) -> None:
    stack = small_pool
    options = RunOptions(reports_dir=tmp_path / "reports", load_users=1)
    with ScenarioRun(stack, "capacity-small-pool", None, options) as run:
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
