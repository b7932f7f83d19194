"""A config that breaks the stack is red by name, not by accident: with pg_hba
rejecting the replication user (compose/variants/replication-refused), the
start fails with the failing health checks and the member's own log line."""

from __future__ import annotations

import pytest
from offset_stack import offset_env  # noqa: F401 - fixture

from harness.errors import PgchaosError
from harness.stack import Stack, StackSpec

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("offset_env"), pytest.mark.own_stack]


def test_replication_refused_is_named_with_the_log_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGCHAOS_UP_TIMEOUT", "45")  # the replicas never become healthy: no need to wait 3 min
    with pytest.raises(PgchaosError) as err, Stack(StackSpec(variant="replication-refused"),
                                                   progress=lambda msg: None):
        pass
    message = str(err.value)
    print(message)
    assert "replicas_streaming" in message or "services" in message, message
    assert "pg_hba.conf" in message and "replication" in message, message
