"""What the steady state says about a formation someone else built: a replica
stuck in "creating replica" because pg_basebackup waits for the leader's
checkpoint gets that named reason, and the health check says whether the
harness's connections went over SSL (libpq's own choice: the harness connects
whatever the server's SSL setting). No Docker."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.stack.manifest import load_manifest
from harness.stack.topology import Member, Topology

steady_state = importlib.import_module("harness.stack.steady_state")  # the module, not
# the function harness.stack exports under the same name
DEMO = Path(__file__).parent / "foreign_citus" / "pgchaos.toml"


def test_a_basebackup_waiting_for_the_checkpoint_is_named() -> None:
    why = steady_state.basebackup_why([("waiting for checkpoint to finish", 41.7)])
    assert why is not None and why.startswith("pg_basebackup waiting for checkpoint")
    assert "42 s" in why and "checkpoint: fast" in why


def test_a_basebackup_streaming_files_is_progress_not_the_checkpoint() -> None:
    why = steady_state.basebackup_why([("streaming database files", 3.2)])
    assert why is not None and "waiting for checkpoint" not in why and "streaming database files" in why
    assert steady_state.basebackup_why([]) is None


class FakeStack:
    def __init__(self) -> None:
        self.manifest = load_manifest(DEMO)

    def logs(self, service: str, tail: int = 400) -> str:
        return ""


def test_replicas_check_names_the_checkpoint_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def basebackups(stack: Any, leader: str) -> list[tuple[str, float]]:
        asked.append(leader)
        return [("waiting for checkpoint to finish", 40.0)]

    monkeypatch.setattr(steady_state, "basebackups", basebackups)
    topo = Topology(groups={"work1": [Member("work1-1", "leader", "running"),
                                      Member("work1-2", "replica", "creating replica")]})
    check = steady_state.check_replicas(FakeStack(), topo, "work1")  # type: ignore[arg-type]
    assert not check.ok and asked == ["work1-1"]
    assert "work1-2 creating replica — pg_basebackup waiting for checkpoint" in check.detail


def test_replicas_check_asks_nothing_once_they_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(steady_state, "basebackups", lambda *a: pytest.fail("asked the leader"))
    topo = Topology(groups={"work1": [Member("work1-1", "leader", "running"),
                                      Member("work1-2", "quorum_standby", "streaming")]})
    assert steady_state.check_replicas(FakeStack(), topo, "work1").ok  # type: ignore[arg-type]


@pytest.mark.parametrize(("env", "tls", "server", "expected"), [
    ({}, "TLSv1.3", "on", "over SSL (TLSv1.3; sslmode prefer)"),
    ({}, None, "off", "without SSL (server ssl=off; sslmode prefer)"),
    ({"PGSSLMODE": "verify-ca", "PGSSLROOTCERT": "/x/ca.pem"}, "TLSv1.3", "on",
     "over SSL (TLSv1.3; sslmode verify-ca, PGSSLMODE, PGSSLROOTCERT set)"),
])
def test_the_health_check_says_whether_ssl_was_used(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                                     tls: str | None, server: str, expected: str) -> None:
    for name in steady_state.SSL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert steady_state.ssl_used(tls, server) == expected


def test_the_harness_never_pins_sslmode_in_its_connection_strings() -> None:
    from harness.stack.stack import Stack

    stack = SimpleNamespace(manifest=load_manifest(DEMO), database="citus",
                            published_port=lambda service, port: 15000)
    dsn = Stack.dsn(stack, via="router")  # type: ignore[arg-type]
    assert "sslmode" not in dsn and "port=15000" in dsn and "dbname=citus" in dsn


def test_citus_metadata_reads_survive_a_missed_connect_but_not_three(monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    from harness.stack import citus

    calls: list[int] = []

    class Conn:
        def __enter__(self) -> Conn:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def execute(self, sql: str, params: Any = None) -> Any:
            return SimpleNamespace(fetchall=lambda: [("toxiproxy", 15211)])

    def connect(dsn: str, autocommit: bool = False) -> Conn:
        calls.append(1)
        if len(calls) < fails_before:
            raise psycopg.errors.ConnectionTimeout("connection timeout expired")
        return Conn()

    monkeypatch.setattr(citus.psycopg, "connect", connect)
    monkeypatch.setattr(citus.time, "sleep", lambda s: None)
    fails_before = 3  # two missed connects, then an answer
    assert citus.active_workers("dsn") == ["toxiproxy:15211"] and len(calls) == 3
    calls.clear()
    fails_before = 99
    with pytest.raises(psycopg.errors.ConnectionTimeout):
        citus.active_workers("dsn")
    assert len(calls) == citus.CONNECT_ATTEMPTS
