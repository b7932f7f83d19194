"""Ports and state folder for tests that build stacks of their own, clear of a
stack on the default ports (one from `pgchaos up`, or the session's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.stack import stack as stack_module

OFFSET_PORTS = {
    "PGCHAOS_PGBOUNCER_PORT": "26432",
    "PGCHAOS_HAPROXY_PRIMARY_PORT": "25000",
    "PGCHAOS_HAPROXY_REPLICA_PORT": "25001",
    "PGCHAOS_HAPROXY_STATS_PORT": "28404",
    "PGCHAOS_HEALTH_PORT": "28008",
    "PGCHAOS_TOXIPROXY_PORT": "28474",
    "PGCHAOS_PROMETHEUS_PORT": "29090",
    "PGCHAOS_ALERTMANAGER_PORT": "29093",
    "PGCHAOS_ALERT_RECEIVER_PORT": "29095",
}
OFFSET_ENV = {**OFFSET_PORTS, "PGCHAOS_STATE_DIR": "/var/lib/pgchaos-variants"}
STATE_DIR = Path(OFFSET_ENV["PGCHAOS_STATE_DIR"])


@pytest.fixture
def offset_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Offset ports and state folder, set before any Ports/StackSpec is built."""
    for name, value in OFFSET_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(stack_module, "STATE_ROOT", STATE_DIR)
    yield
