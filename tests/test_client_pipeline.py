"""The client's write, with and without the pipeline, over a fake connection:
the same statements in the same order and the same op types (no Docker)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
import pytest

from harness.history import HistoryWriter, read_history
from harness.load.client import Client


class FakeConn:
    closed = False
    broken = False

    def __init__(self, fail_on: str | None = None, at_exit: bool = False, notice: str | None = None) -> None:
        self.sent: list[str] = []
        self.fail_on = fail_on
        self.at_exit = at_exit  # a pipeline reports a statement's error when it syncs
        self.notice = notice
        self.handlers: list = []
        self.in_pipeline = False
        self.pending: Exception | None = None

    def execute(self, sql: str, params: object = None) -> None:
        self.sent.append(sql.split(" (")[0])
        if self.fail_on and sql.startswith(self.fail_on):
            exc = psycopg.errors.UniqueViolation("dup") if self.fail_on == "INSERT" else psycopg.OperationalError(
                "server closed the connection")
            if self.in_pipeline:
                self.pending = exc
            else:
                raise exc
        if sql == "COMMIT" and self.notice:
            diag = type("D", (), {"message_primary": self.notice})()
            for h in self.handlers:
                h(diag)

    @contextlib.contextmanager
    def pipeline(self) -> Iterator[None]:
        self.in_pipeline = True
        self.sent.append("<pipeline>")
        yield
        self.in_pipeline = False
        self.sent.append("<sync>")
        if self.pending is not None:
            raise self.pending

    def add_notice_handler(self, h) -> None:
        self.handlers.append(h)

    def remove_notice_handler(self, h) -> None:
        self.handlers.remove(h)

    def close(self) -> None:
        self.closed = True


def run(tmp_path, pipeline: bool, **kw) -> tuple[str, list[str], list]:
    fake = FakeConn(**kw)
    with HistoryWriter(tmp_path / f"h{pipeline}.jsonl", run_start=0.0) as h:
        client = Client("", h, 5, pipeline=pipeline)
        client._connection = lambda: fake  # type: ignore[method-assign]
        outcome = client.write(42, "events")
    ops = read_history(tmp_path / f"h{pipeline}.jsonl")
    return outcome, [s for s in fake.sent if not s.startswith("<")], [(o.type, o.f, o.value) for o in ops]


@pytest.mark.parametrize("kw, expected", [
    ({}, "ok"),
    ({"fail_on": "INSERT"}, "fail"),
    ({"fail_on": "SET LOCAL statement_timeout = 0"}, "fail"),
    ({"fail_on": "COMMIT"}, "info"),
    ({"notice": "canceling wait for synchronous replication due to user request"}, "info"),
])
def test_pipeline_changes_no_statement_and_no_op_type(tmp_path, kw, expected) -> None:
    plain = run(tmp_path, False, **kw)
    piped = run(tmp_path, True, **kw)
    assert plain[0] == piped[0] == expected
    assert piped[2] == plain[2]
    assert plain[2][0] == ("invoke", "write", 42) and plain[2][1][0] == expected


def test_pipeline_sends_commit_after_the_sync(tmp_path) -> None:
    fake = FakeConn()
    with HistoryWriter(tmp_path / "h.jsonl", run_start=0.0) as h:
        client = Client("", h, 5, pipeline=True)
        client._connection = lambda: fake  # type: ignore[method-assign]
        client.write(1, "events")
    assert fake.sent == ["<pipeline>", "BEGIN", "SET LOCAL statement_timeout = 3000", "INSERT INTO pgchaos.events",
                         "SET LOCAL statement_timeout = 0", "<sync>", "COMMIT"]
