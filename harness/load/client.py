"""The client: one connection that performs writes, reads and the final read
and records each as invoke -> ok / fail / info in a history.

Classification is what RPO rests on: an error before COMMIT was sent means
the write definitely did not happen (`fail`); an error while COMMIT was in
flight means it may or may not have committed (`info`), unless the server
answered with an error that guarantees a rollback.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

import psycopg

from harness.history import HistoryWriter

# Server errors at COMMIT that guarantee the transaction rolled back.
ROLLED_BACK_SQLSTATE_CLASSES = ("22", "23", "25", "40", "42")
KEY_SPAN = 10**9  # keys of one run lie in [base, base + KEY_SPAN)
PROCESS_SPAN = 10**6

# The load touches only its own schema (harness/load/schema.py creates it).
WRITE_SQL = {
    "ledger": "INSERT INTO pgchaos.ledger (key, writer) VALUES (%s, %s)",
    "events": "INSERT INTO pgchaos.events (id, user_id, kind, payload) VALUES (%s, %s, 'chaos', NULL)",
}
READ_SQL = {
    "ledger": "SELECT key FROM pgchaos.ledger WHERE key = %s",
    "events": "SELECT id FROM pgchaos.events WHERE id = %s",
}
READ_ALL_SQL = (
    "SELECT key FROM pgchaos.ledger WHERE key >= %(lo)s AND key < %(hi)s "
    "UNION SELECT id FROM pgchaos.events WHERE id >= %(lo)s AND id < %(hi)s ORDER BY 1"
)
VECTOR_SQL = "SELECT id FROM vectors ORDER BY embedding <=> %s::vector LIMIT 5"


def key_base(now: float | None = None) -> int:
    """The first key of a run: wall-clock seconds scaled so runs never overlap."""
    return int(now if now is not None else time.time()) * KEY_SPAN


def classify_commit_error(exc: BaseException) -> str:
    """`fail` when the server guarantees a rollback, else `info` (unknown)."""
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate and sqlstate[:2] in ROLLED_BACK_SQLSTATE_CLASSES:
        return "fail"
    return "info"


def describe(exc: BaseException) -> str:
    sqlstate = getattr(exc, "sqlstate", None)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{sqlstate + ' ' if sqlstate else ''}{type(exc).__name__}: {text}"[:300]


# a transaction's statements; returns the check to make once their results are in:
# None to commit, or a reason to roll back
Body = Callable[[psycopg.Connection], Callable[[], "str | None"]]


class Client:
    """A recording client over one (re)connecting psycopg connection."""

    def __init__(self, dsn: str, history: HistoryWriter, process: int,
                 statement_timeout_ms: int = 3000, pipeline: bool = False, prepare: bool = True) -> None:
        self.dsn = dsn
        self.history = history
        self.process = process
        self.statement_timeout_ms = statement_timeout_ms
        # pipeline: a write sends BEGIN, SET LOCAL, INSERT, SET LOCAL in one round
        # trip (libpq pipeline mode) and COMMIT in a second one; errors of the
        # first four still arrive before COMMIT is sent, so they stay `fail`.
        self.pipeline = pipeline
        # prepare: psycopg's server-side prepared statements (after 5 uses); through
        # PgBouncer in transaction mode each one is tracked and re-parsed per server link
        self.prepare = prepare
        self.conn: psycopg.Connection | None = None

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None

    def _connection(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.close()
            self.conn = psycopg.connect(self.dsn, autocommit=True, prepare_threshold=5 if self.prepare else None)
        return self.conn

    def _after_error(self) -> None:
        """Drop the connection: after an error its state cannot be trusted."""
        self.close()

    def write(self, key: int, table: str = "ledger") -> str:
        """Insert one unique key in its own transaction; returns the op type."""
        def insert(conn: psycopg.Connection) -> Callable[[], str | None]:
            conn.execute(WRITE_SQL[table], (key, self.process))
            return lambda: None

        return self.transaction("write", key, insert)

    def transaction(self, f: str, value: Any, body: Body) -> str:
        """Run ``body`` in one transaction and record ``f`` as invoke -> ok / fail / info.

        With ``pipeline``, BEGIN, the body's statements and the SET LOCALs go in one
        round trip (libpq pipeline mode), COMMIT in a second; every error of the first
        arrives before COMMIT is sent. ``body`` returns a check, called once its results
        are in: None to commit, or a reason to roll back (recorded ``fail``). Errors
        before COMMIT is sent are ``fail``; at COMMIT, ``info`` unless the server
        guarantees a rollback; a commit "committed locally" after a cancelled wait for
        the synchronous standby is ``info``.
        """
        self.history.append(self.process, "invoke", f, value)
        commit_sent = False
        notices: list[str] = []

        def on_notice(diag: psycopg.errors.Diagnostic) -> None:
            notices.append(diag.message_primary or "")

        try:
            conn = self._connection()
            with conn.pipeline() if self.pipeline else contextlib.nullcontext():
                conn.execute("BEGIN")
                conn.execute(f"SET LOCAL statement_timeout = {int(self.statement_timeout_ms)}")
                check = body(conn)
                # No timeout on COMMIT: a cancelled wait for the synchronous standby
                # reports success for a commit that is only local (lost on failover).
                conn.execute("SET LOCAL statement_timeout = 0")
            refused = check()
            if refused is not None:
                conn.execute("ROLLBACK")
                self.history.append(self.process, "fail", f, value, error=refused)
                return "fail"
            conn.add_notice_handler(on_notice)
            commit_sent = True
            conn.execute("COMMIT")
        except Exception as exc:
            kind = classify_commit_error(exc) if commit_sent else "fail"
            self._after_error()
            self.history.append(self.process, kind, f, value, error=describe(exc))
            return kind
        finally:
            if self.conn is not None:
                with contextlib.suppress(ValueError):
                    self.conn.remove_notice_handler(on_notice)
        unreplicated = [n for n in notices if "synchronous replication" in n]
        if unreplicated:
            self.history.append(self.process, "info", f, value, error=unreplicated[0][:300])
            return "info"
        self.history.append(self.process, "ok", f, value)
        return "ok"

    def read(self, key: int, table: str = "ledger") -> str:
        """Read one key back; an error is a `fail` (reads change nothing)."""
        self.history.append(self.process, "invoke", "read", key)
        try:
            conn = self._connection()
            with conn.transaction():
                conn.execute(f"SET LOCAL statement_timeout = {int(self.statement_timeout_ms)}")
                row = conn.execute(READ_SQL[table], (key,)).fetchone()
        except Exception as exc:
            self._after_error()
            self.history.append(self.process, "fail", "read", key, error=describe(exc))
            return "fail"
        self.history.append(self.process, "ok", "read", key if row else None)
        return "ok"

    def vector_search(self, rng: random.Random | None = None) -> str:
        """The guide's `ORDER BY embedding <=> ...` query."""
        rng = rng or random.Random()
        probe = "[" + ",".join(f"{rng.random():.3f}" for _ in range(3)) + "]"
        self.history.append(self.process, "invoke", "vector-search", probe)
        try:
            conn = self._connection()
            with conn.transaction():
                conn.execute(f"SET LOCAL statement_timeout = {int(self.statement_timeout_ms)}")
                ids = [r[0] for r in conn.execute(VECTOR_SQL, (probe,)).fetchall()]
        except Exception as exc:
            self._after_error()
            self.history.append(self.process, "fail", "vector-search", probe, error=describe(exc))
            return "fail"
        self.history.append(self.process, "ok", "vector-search", ids)
        return "ok"

    def read_all(self, base: int, attempts: int = 30, pause_s: float = 2.0) -> list[int] | None:
        """The final read of every key of the run, retried until it answers."""
        params: dict[str, Any] = {"lo": base, "hi": base + KEY_SPAN}
        self.history.append(self.process, "invoke", "read-all", None)
        last = "no attempt"
        for _ in range(attempts):
            try:
                conn = self._connection()
                keys = [r[0] for r in conn.execute(READ_ALL_SQL, params).fetchall()]
            except Exception as exc:
                self._after_error()
                last = describe(exc)
                time.sleep(pause_s)
                continue
            self.history.append(self.process, "ok", "read-all", keys)
            return keys
        self.history.append(self.process, "fail", "read-all", None, error=last)
        return None
