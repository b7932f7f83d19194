"""Capacity is part of the steady state: the declared client profile (the
guide's 200 client connections through PgBouncer) connects at once, each
runs a short transaction while the others hold their connections (the
clients already connected, the probe's, count towards the profile). Every
client must be served ("no more connections allowed" is a named red) and
none may wait longer than the bound. No fault: the stack as configured."""

import functools

import pytest

from conftest import assert_verdict
from harness.load.capacity import check_capacity, connected_clients, drive_clients

# the whole client profile at once, timed: alone when the catalogue is split over stacks
pytestmark = [pytest.mark.scenario, pytest.mark.docker, pytest.mark.requires("pooler"), pytest.mark.exclusive]


def test_capacity(scenario_run):
    with scenario_run(load=False) as run:  # the probe's clients count towards the profile
        profile = run.stack.manifest.load_clients
        clients = profile - connected_clients(run.stack)
        run.figures.update(declared_clients=profile, driven_clients=clients)
        drive_clients(run.stack.dsn(connect_timeout=10), run.history, clients=clients)
        run.add_check("capacity", functools.partial(check_capacity, clients=clients))
    assert_verdict(run.verdict)
