"""Ports and state folder for tests that build stacks of their own, clear of a
stack on the default ports (one from `pgchaos up`, or the session's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.stack import runs as runs_module
from harness.stack.spec import shifted_ports

OFFSET_PORTS = shifted_ports(20000)  # 26432, 25000, ...: the defaults + 20000
OFFSET_ENV = {**OFFSET_PORTS, "PGCHAOS_STATE_DIR": "/var/lib/pgchaos-variants"}
STATE_DIR = Path(OFFSET_ENV["PGCHAOS_STATE_DIR"])


@pytest.fixture
def offset_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Offset ports and state folder, set before any Ports/StackSpec is built."""
    for name, value in OFFSET_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(runs_module, "STATE_ROOT", STATE_DIR)
    yield
