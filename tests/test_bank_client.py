"""The bank's transactions over a fake connection (no Docker): which statements are
sent, in which order, and how each outcome is recorded (ok / fail / info)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness.history import HistoryWriter, read_history
from harness.load.bank import BankClient, _paired_body, _transfer_body


class Cursor:
    def __init__(self, rowcount: int) -> None:
        self.rowcount = rowcount


class FakeConn:
    closed = False
    broken = False

    def __init__(self, fail_on: str | None = None, sqlstate_error: type[Exception] | None = None,
                 debit_rows: int = 1, notice: str | None = None) -> None:
        self.sent: list[str] = []
        self.fail_on = fail_on
        self.error = sqlstate_error or psycopg.OperationalError
        self.debit_rows = debit_rows
        self.notice = notice
        self.handlers: list[Any] = []
        self.in_pipeline = False
        self.pending: Exception | None = None

    def execute(self, sql: str, params: object = None) -> Cursor:
        if sql.startswith("UPDATE"):
            self.sent.append(f"UPDATE {'debit' if 'balance - ' in sql else 'credit'} {params[1]}")  # type: ignore[index]
        else:
            self.sent.append(sql.split(" (")[0])
        if self.fail_on and sql.startswith(self.fail_on):
            exc = self.error("boom")
            if self.in_pipeline:
                self.pending = exc
            else:
                raise exc
        if sql == "COMMIT" and self.notice:
            diag = type("D", (), {"message_primary": self.notice})()
            for h in self.handlers:
                h(diag)
        return Cursor(self.debit_rows if "balance - " in sql else 1)

    @contextlib.contextmanager
    def pipeline(self) -> Iterator[None]:
        self.in_pipeline = True
        yield
        self.in_pipeline = False
        self.sent.append("<sync>")
        if self.pending is not None:
            raise self.pending

    def add_notice_handler(self, h: Any) -> None:
        self.handlers.append(h)

    def remove_notice_handler(self, h: Any) -> None:
        self.handlers.remove(h)

    def close(self) -> None:
        self.closed = True


def transfer(tmp_path: Path, pipeline: bool = True, **kw: Any) -> tuple[str, list[str], list[tuple]]:
    fake = FakeConn(**kw)
    path = tmp_path / f"h{pipeline}{len(kw)}.jsonl"
    with HistoryWriter(path, run_start=0.0) as h:
        client = BankClient("", h, 900, pipeline=pipeline)
        client._connection = lambda: fake  # type: ignore[method-assign]
        value = {"key": 7, "from": 2, "to": 1, "amount": 30}
        outcome = client.transaction("transfer", value, _transfer_body(2, 1, 30, 7))
    ops = read_history(path)
    return outcome, fake.sent, [(o.type, o.f, o.value["key"], o.error) for o in ops]


def test_a_transfer_locks_in_id_order_and_commits_after_the_sync(tmp_path: Path) -> None:
    outcome, sent, ops = transfer(tmp_path)
    assert outcome == "ok" and [o[0] for o in ops] == ["invoke", "ok"]
    assert sent == ["BEGIN", "SET LOCAL statement_timeout = 3000",
                    "UPDATE credit 1", "UPDATE debit 2",  # rows locked in id order: no deadlock between opposites
                    "INSERT INTO pgchaos.bank_entries", "SET LOCAL statement_timeout = 0", "<sync>", "COMMIT"]


def test_insufficient_balance_rolls_back_and_is_a_fail(tmp_path: Path) -> None:
    outcome, sent, ops = transfer(tmp_path, debit_rows=0)
    assert outcome == "fail" and sent[-1] == "ROLLBACK" and "COMMIT" not in sent
    assert ops[-1][0] == "fail" and "insufficient balance on account 2" in ops[-1][3]


@pytest.mark.parametrize("pipeline", [True, False])
@pytest.mark.parametrize("kw, expected", [
    ({"fail_on": "UPDATE"}, "fail"),  # before COMMIT: definitely not applied
    ({"fail_on": "INSERT"}, "fail"),
    ({"fail_on": "COMMIT"}, "info"),  # connection lost at COMMIT: unknown
    ({"fail_on": "COMMIT", "sqlstate_error": psycopg.errors.SerializationFailure}, "fail"),  # class 40
    ({"notice": "canceling wait for synchronous replication due to user request"}, "info"),
])
def test_outcomes_are_classified_like_writes(tmp_path: Path, pipeline: bool, kw: dict, expected: str) -> None:
    outcome, _, ops = transfer(tmp_path, pipeline, **kw)
    assert outcome == expected and ops[-1][0] == expected and ops[0][:3] == ("invoke", "transfer", 7)


def test_a_paired_insert_writes_the_order_and_its_line_in_one_transaction(tmp_path: Path) -> None:
    fake = FakeConn()
    with HistoryWriter(tmp_path / "p.jsonl", run_start=0.0) as h:
        client = BankClient("", h, 950, pipeline=True)
        client._connection = lambda: fake  # type: ignore[method-assign]
        assert client.transaction("paired-insert", {"key": 9, "amount": 3}, _paired_body(9, 3)) == "ok"
    assert fake.sent[2:4] == ["INSERT INTO pgchaos.bank_orders", "INSERT INTO pgchaos.bank_order_lines"]
    assert fake.sent.index("<sync>") < fake.sent.index("COMMIT")


def test_the_bank_alters_its_tables_in_statements_of_their_own() -> None:
    """Citus propagates an ALTER TABLE to the shards only when it is alone in its query string."""
    from harness.load.bank import CITUS_DDL, DDL, REPLICA_IDENTITY

    assert "ALTER TABLE" not in DDL.upper() and "ALTER TABLE" not in CITUS_DDL.upper()
    assert REPLICA_IDENTITY.startswith("ALTER TABLE") and ";" not in REPLICA_IDENTITY
    assert "REPLICA IDENTITY FULL" in REPLICA_IDENTITY and "bank_entries" in REPLICA_IDENTITY
