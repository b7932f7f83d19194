"""Multi-row transactions under faults: the bank and the paired insert.

*Bank*: a fixed set of accounts; each client transfers a random amount
between two random accounts in one transaction (debit conditional on no
negative balance, credit, and one entry per side in ``bank_entries``, each
entry beside its account's row). *Paired insert*: one transaction inserts an
order and its order line (two tables). A reader sums the balances now and
then (``read-total``); after the load stops, one final read records the
whole state (``bank-final``). ``checkers.atomicity`` judges the history.

On the reference profile the tables live on the coordinator alone (atomic by
construction: the checker is exercised); on a stack with the ``citus``
capability they are distributed (``create_distributed_table``), the accounts
spread over every worker group, so a transfer or a paired insert commits on
several shards with two-phase commit. Every statement is bounded
(``statement_timeout``, ``connect_timeout``), every loop in count and time.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import psycopg

from harness.checkers.atomicity import BANK_FINAL, PAIRED_INSERT, READ_TOTAL, TRANSFER
from harness.history import HistoryWriter
from harness.load.client import PROCESS_SPAN, Body, Client, describe

if TYPE_CHECKING:
    from harness.stack.stack import Stack

# process ids (below 1000, so that keys stay in the run's key span)
TRANSFER_BASE: Final = 900  # transfer clients 900, 901, …
PAIRED_BASE: Final = 950  # paired-insert clients 950, 951, …
TOTAL_READER: Final = 960
FINAL_BANK_READER: Final = 970
ACCOUNT_KEYS: Final = 999  # accounts are keys base + 999 × 10^6 + i


SCHEMA = "pgchaos"
DDL: Final = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.bank_accounts (
    id bigint PRIMARY KEY,
    balance bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.bank_entries (
    account bigint NOT NULL,
    key bigint NOT NULL,
    amount bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.bank_orders (
    id bigint PRIMARY KEY,
    amount bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.bank_order_lines (
    id bigint PRIMARY KEY,
    amount bigint NOT NULL
);
"""
# bank_entries has no key of its own: a transfer applied twice shows as repeated entries. Its
# replica identity is the whole row, so Citus can still move its shards with logical replication
# (citus_rebalance_start, citus_drain_node refuse a table without one, and the bank's tables stay
# on a reused stack until it goes). A statement of its own: Citus propagates an ALTER TABLE to the
# shards only when it is alone in its query string ("cannot insert multiple commands into a
# prepared statement" otherwise).
REPLICA_IDENTITY: Final = f"ALTER TABLE {SCHEMA}.bank_entries REPLICA IDENTITY FULL"
_DISTRIBUTE = ("SELECT create_distributed_table('{table}', '{column}'{extra}) WHERE NOT EXISTS "
               "(SELECT 1 FROM pg_dist_partition WHERE logicalrelid = '{table}'::regclass)")
# Citus: entries colocated with their account (same shard as the balance they explain);
# order lines in a colocation group of their own, so an order and its line sit on two shards.
CITUS_DDL: Final = ";\n".join(_DISTRIBUTE.format(table=f"{SCHEMA}.{t}", column=c, extra=x) for t, c, x in (
    ("bank_accounts", "id", ", shard_count => 8"),
    ("bank_entries", "account", f", colocate_with => '{SCHEMA}.bank_accounts'"),
    ("bank_orders", "id", ", shard_count => 8"),
    ("bank_order_lines", "id", ", shard_count => 8, colocate_with => 'none'"),
))
SHARD_SQL: Final = ("SELECT p.shardid, p.groupid FROM pg_dist_placement p WHERE p.shardid = "
                    "get_shard_id_for_distribution_column(%s::regclass, %s::bigint) LIMIT 1")


@dataclass
class BankOptions:
    """The workload's shape; every loop is bounded by ``max_ops`` and ``max_duration_s``."""

    accounts: int = 8
    initial_balance: int = 1000
    max_amount: int = 50
    transfer_clients: int = 2
    paired_clients: int = 1
    period_s: float = 0.02  # pause between one client's transactions
    pipeline: bool = True  # one round trip before COMMIT (BankClient.transaction)
    read_period_s: float = 0.25
    statement_timeout_ms: int = 2000
    connect_timeout_s: int = 2
    max_ops: int = 20_000
    max_duration_s: float = 600.0
    seed: int | None = None


@dataclass
class _Rate:
    ok: int = 0
    done: int = 0
    first: float = 0.0
    last: float = 0.0
    last_failure: float = 0.0
    last_ok: float = 0.0
    by_type: dict[str, int] = field(default_factory=lambda: {"ok": 0, "fail": 0, "info": 0})


BankClient = Client  # the recording client: its `transaction` runs the bank's bodies


def _transfer_body(src: int, dst: int, amount: int, key: int) -> Body:
    def body(conn: psycopg.Connection) -> Callable[[], str | None]:
        # both rows locked in id order (no deadlock between opposite transfers)
        debit = None
        for account in sorted((src, dst)):
            if account == src:
                debit = conn.execute(f"UPDATE {SCHEMA}.bank_accounts SET balance = balance - %s "
                                     "WHERE id = %s AND balance >= %s", (amount, src, amount))
            else:
                conn.execute(f"UPDATE {SCHEMA}.bank_accounts SET balance = balance + %s WHERE id = %s",
                             (amount, dst))
        conn.execute(f"INSERT INTO {SCHEMA}.bank_entries (account, key, amount) VALUES (%s, %s, %s), (%s, %s, %s)",
                     (src, key, -amount, dst, key, amount))
        return lambda: None if debit is not None and debit.rowcount == 1 else (
            f"insufficient balance on account {src} (rolled back)")
    return body


def _paired_body(key: int, amount: int) -> Body:
    def body(conn: psycopg.Connection) -> Callable[[], str | None]:
        conn.execute(f"INSERT INTO {SCHEMA}.bank_orders (id, amount) VALUES (%s, %s)", (key, amount))
        conn.execute(f"INSERT INTO {SCHEMA}.bank_order_lines (id, amount) VALUES (%s, %s)", (key, amount))
        return lambda: None
    return body


class BankLoad:
    """The bank and paired-insert clients and the total reader, beside the run's load.

    A workload of :class:`harness.scenario.ScenarioRun` (``run.add_workload``):
    ``start()`` creates and seeds the tables and starts the threads, ``stop()``
    stops them, ``final_read()`` records the state once the stack is quiet.
    """

    def __init__(self, stack: Stack, history: HistoryWriter, key_base: int,
                 options: BankOptions | None = None) -> None:
        self.stack = stack
        self.history = history
        self.key_base = key_base
        self.options = options or BankOptions()
        self.citus = bool(stack.capabilities().get("citus"))
        self.accounts: list[int] = []
        self.initial: dict[int, int] = {}
        self.rates: dict[str, _Rate] = {TRANSFER: _Rate(), PAIRED_INSERT: _Rate(), READ_TOTAL: _Rate()}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._rng = random.Random(self.options.seed)

    # -- set-up ------------------------------------------------------------------
    def dsn(self, via: str = "pooler") -> str:
        return self.stack.dsn(connect_timeout=self.options.connect_timeout_s, via=via)

    def _choose_accounts(self) -> list[int]:
        first = self.key_base + ACCOUNT_KEYS * PROCESS_SPAN
        n = self.options.accounts
        if not self.citus:
            return [first + i for i in range(n)]
        from harness.stack import citus

        groups = sorted(citus.primaries(self.dsn("router")))
        if not groups:
            raise RuntimeError("no Citus worker group in pg_dist_node")
        per = -(-n // len(groups))
        chosen: list[int] = []
        for g in groups:  # every worker group holds some accounts
            chosen += citus.keys_in_group(self.dsn("router"), f"{SCHEMA}.bank_accounts", g, first, per)
        return sorted(chosen)[:n] if len(chosen) >= n else chosen

    def setup(self, attempts: int = 10) -> None:
        """Create the tables (distributed on Citus) and this run's accounts (idempotent, retried)."""
        last = ""
        for _ in range(attempts):
            try:
                with psycopg.connect(self.dsn("router"), autocommit=True) as conn:
                    conn.execute("SET statement_timeout = 30000")
                    conn.execute(DDL)
                    conn.execute(REPLICA_IDENTITY)
                    if self.citus:
                        conn.execute(CITUS_DDL)
                    self.accounts = self._choose_accounts()
                    self.initial = {a: self.options.initial_balance for a in self.accounts}
                    with conn.transaction():
                        for a in self.accounts:
                            conn.execute(f"INSERT INTO {SCHEMA}.bank_accounts (id, balance) VALUES (%s, %s) "
                                         "ON CONFLICT (id) DO NOTHING", (a, self.initial[a]))
                return
            except psycopg.Error as exc:
                last = describe(exc)
                time.sleep(1.0)
        raise RuntimeError(f"bank tables could not be set up: {last}")

    # -- the loops ---------------------------------------------------------------
    def _count(self, kind: str, outcome: str) -> None:
        now = time.monotonic()
        with self._lock:
            r = self.rates[kind]
            r.done += 1
            r.by_type[outcome] = r.by_type.get(outcome, 0) + 1
            r.first = r.first or now
            r.last = now
            if outcome == "ok":
                r.ok += 1
                r.last_ok = now
            else:
                r.last_failure = now

    def _loop(self, kind: str, process: int, step: Callable[[BankClient, int, random.Random], str],
              period_s: float) -> None:
        client = BankClient(self.dsn(), self.history, process,
                            statement_timeout_ms=self.options.statement_timeout_ms,
                            pipeline=self.options.pipeline, prepare=False)
        rng = random.Random(self._rng.random())
        deadline = time.monotonic() + self.options.max_duration_s
        counter = 0
        try:
            while not self._stop.is_set() and counter < self.options.max_ops and time.monotonic() < deadline:
                self._count(kind, step(client, self.key_base + process * PROCESS_SPAN + counter, rng))
                counter += 1
                self._stop.wait(period_s)
        finally:
            client.close()

    def _transfer(self, client: BankClient, key: int, rng: random.Random) -> str:
        src, dst = rng.sample(self.accounts, 2)
        amount = rng.randint(1, self.options.max_amount)
        value = {"key": key, "from": src, "to": dst, "amount": amount}
        return client.transaction(TRANSFER, value, _transfer_body(src, dst, amount, key))

    def _paired(self, client: BankClient, key: int, rng: random.Random) -> str:
        amount = rng.randint(1, self.options.max_amount)
        return client.transaction(PAIRED_INSERT, {"key": key, "amount": amount}, _paired_body(key, amount))

    def _read_total(self, client: BankClient, key: int, rng: random.Random) -> str:
        """The sum of the balances in one statement (one snapshot on one node; on Citus,
        a multi-shard read without a distributed snapshot)."""
        self.history.append(client.process, "invoke", READ_TOTAL, None)
        try:
            conn = client._connection()
            with conn.transaction():
                conn.execute(f"SET LOCAL statement_timeout = {int(self.options.statement_timeout_ms)}")
                n, total = conn.execute(f"SELECT count(*), coalesce(sum(balance), 0) FROM {SCHEMA}.bank_accounts "
                                        "WHERE id = ANY(%s)", (self.accounts,)).fetchone()
        except Exception as exc:
            client._after_error()
            self.history.append(client.process, "fail", READ_TOTAL, None, error=describe(exc))
            return "fail"
        self.history.append(client.process, "ok", READ_TOTAL, {"total": int(total), "accounts": int(n)})
        return "ok"

    def start(self) -> BankLoad:
        self.setup()
        o = self.options
        plan = [(TRANSFER, TRANSFER_BASE + i, self._transfer, o.period_s) for i in range(o.transfer_clients)]
        plan += [(PAIRED_INSERT, PAIRED_BASE + i, self._paired, o.period_s) for i in range(o.paired_clients)]
        plan.append((READ_TOTAL, TOTAL_READER, self._read_total, o.read_period_s))
        for kind, process, step, period in plan:
            t = threading.Thread(target=self._loop, args=(kind, process, step, period), daemon=True,
                                 name=f"bank-{kind}-{process}")
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)

    # -- evidence ------------------------------------------------------------------
    def stable_for(self, seconds: float) -> bool:
        """Transfers have committed, with no failure, for the last ``seconds``."""
        now = time.monotonic()
        r = self.rates[TRANSFER]
        return r.last_ok > r.last_failure and now - r.last_failure >= seconds and now - r.last_ok < 1.0

    def figures(self) -> dict[str, Any]:
        """Counts per kind and outcome, and transfers acknowledged per second of the run."""
        out: dict[str, Any] = {"accounts": len(self.accounts), "citus": self.citus}
        for kind, r in self.rates.items():
            span = r.last - r.first
            out[kind] = {**r.by_type, "ok_per_s": round(r.ok / span, 1) if span > 0 else None}
        return out

    def _shards(self, conn: psycopg.Connection, table: str, keys: list[int]) -> dict[str, list[int]]:
        out = {}
        for k in keys:
            row = conn.execute(SHARD_SQL, (f"{SCHEMA}.{table}", k)).fetchone()
            if row is not None:
                out[str(k)] = [int(row[0]), int(row[1])]
        return out

    def final_read(self, attempts: int = 30, pause_s: float = 2.0) -> dict[str, Any] | None:
        """The whole state of the run's accounts, entries, orders and lines (op ``bank-final``),
        read in one transaction (repeatable read on one node) once the load has stopped;
        retried until it answers."""
        lo, hi = self.key_base, self.key_base + 10**9
        self.history.append(FINAL_BANK_READER, "invoke", BANK_FINAL, None)
        last = "no attempt"
        for _ in range(attempts):
            try:
                with psycopg.connect(self.dsn(), autocommit=True) as conn:
                    with conn.transaction():
                        if not self.citus:  # one snapshot; Citus has no distributed one (the load is quiet)
                            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                        conn.execute("SET LOCAL statement_timeout = 30000")
                        balances = conn.execute(f"SELECT id, balance FROM {SCHEMA}.bank_accounts "
                                                "WHERE id = ANY(%s) ORDER BY id", (self.accounts,)).fetchall()
                        entries = conn.execute(f"SELECT key, account, amount FROM {SCHEMA}.bank_entries "
                                               "WHERE account = ANY(%s) AND key >= %s AND key < %s "
                                               "ORDER BY key, account", (self.accounts, lo, hi)).fetchall()
                        orders = conn.execute(f"SELECT id FROM {SCHEMA}.bank_orders WHERE id >= %s AND id < %s "
                                              "ORDER BY id", (lo, hi)).fetchall()
                        lines = conn.execute(f"SELECT id FROM {SCHEMA}.bank_order_lines WHERE id >= %s "
                                             "AND id < %s ORDER BY id", (lo, hi)).fetchall()
                    value: dict[str, Any] = {
                        "accounts": [[int(a), int(b)] for a, b in balances],
                        "initial": [[a, b] for a, b in sorted(self.initial.items())],
                        "entries": [[int(k), int(a), int(x)] for k, a, x in entries],
                        "orders": [int(k) for (k,) in orders],
                        "lines": [int(k) for (k,) in lines],
                    }
                    if self.citus:  # where each account lives, and the shards of half-present pairs
                        odd = sorted(set(value["orders"]) ^ set(value["lines"]))
                        value["shards"] = {"bank_accounts": self._shards(conn, "bank_accounts", self.accounts),
                                           "bank_orders": self._shards(conn, "bank_orders", odd),
                                           "bank_order_lines": self._shards(conn, "bank_order_lines", odd)}
            except Exception as exc:
                last = describe(exc)
                time.sleep(pause_s)
                continue
            self.history.append(FINAL_BANK_READER, "ok", BANK_FINAL, value)
            return value
        self.history.append(FINAL_BANK_READER, "fail", BANK_FINAL, None, error=last)
        return None
