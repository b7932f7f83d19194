"""Prepared transactions left behind: ``pg_prepared_xacts`` on every data member,
asked directly on its published port, after each heal and once at the end.

Each sample is one observer op (``f`` ``prepared-xacts``, ``node`` = the member):
``ok`` with ``{"member", "primary", "xacts": [{"gid", "database", "age_s", "relations"}]}``
(``relations``: the tables it holds locks on — on Citus the shards it touched),
or ``fail`` when the member does not answer. After a heal the watch samples
every ``period_s`` until no primary holds a transaction prepared before the
heal (among those that answer), or until ``max_wait_s``; ``checkers.atomicity``
judges the ages.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any, Final

import psycopg

from harness.checkers.atomicity import PREPARED_XACTS
from harness.history import OBSERVER, HistoryWriter
from harness.load.client import describe

if TYPE_CHECKING:
    from harness.stack.stack import Stack

# Per prepared transaction: the relations it holds locks on (on Citus, the shards it touched;
# a prepared transaction's locks show with virtualtransaction '-1/<xid>' and no pid).
SAMPLE_SQL: Final = (
    "SELECT p.gid, p.database::text, extract(epoch FROM now() - p.prepared)::float8, "
    "coalesce((SELECT array_agg(DISTINCT c.relname::text ORDER BY c.relname::text) FROM pg_locks l "
    "JOIN pg_class c ON c.oid = l.relation WHERE l.locktype = 'relation' AND l.pid IS NULL "
    "AND l.virtualtransaction = '-1/' || p.transaction::text AND c.relkind IN ('r', 'p')), '{}') "
    "FROM pg_prepared_xacts p ORDER BY p.prepared")


class PreparedXactsWatch:
    """A workload of :class:`harness.scenario.ScenarioRun` that samples after heals."""

    def __init__(self, stack: Stack, history: HistoryWriter, period_s: float = 0.5,
                 max_wait_s: float = 90.0) -> None:
        self.stack = stack
        self.history = history
        self.period_s = period_s
        self.max_wait_s = max_wait_s
        self.members = list(stack.manifest.data_members)
        self.longest: dict[str, Any] | None = None  # the oldest prepared transaction seen
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def sample(self, member: str) -> dict[str, Any] | None:
        """One member's prepared transactions, recorded; None when it does not answer."""
        try:
            with psycopg.connect(self.stack.dsn(member, connect_timeout=2), autocommit=True,
                                 options="-c statement_timeout=2000") as conn:
                primary = not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
                rows = conn.execute(SAMPLE_SQL).fetchall()
        except Exception as exc:
            self.history.append(OBSERVER, "fail", PREPARED_XACTS, {"member": member}, node=member,
                                error=describe(exc))
            return None
        xacts = [{"gid": g, "database": d, "age_s": round(float(a), 3), "relations": list(rels or [])}
                 for g, d, a, rels in rows]
        value = {"member": member, "primary": primary, "xacts": xacts}
        self.history.append(OBSERVER, "ok", PREPARED_XACTS, value, node=member)
        for x in xacts:
            if self.longest is None or x["age_s"] > self.longest["age_s"]:
                self.longest = {"member": member, **x}
        return value

    def round(self) -> list[dict[str, Any] | None]:
        return [self.sample(m) for m in self.members]

    def _after_heal(self) -> None:
        healed = time.monotonic()
        deadline = healed + self.max_wait_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            since = time.monotonic() - healed
            primaries = [s for s in self.round() if s is not None and s["primary"]]
            # done when the primaries that answer hold none prepared before the heal (a member
            # down for good does not hold the watch; its samples are recorded as fail)
            if primaries and not any(x["age_s"] > since for s in primaries for x in s["xacts"]):
                return
            self._stop.wait(self.period_s)

    # -- workload protocol ---------------------------------------------------------
    def start(self) -> PreparedXactsWatch:
        return self

    def on_fault(self, verb: str, fault: Any) -> None:
        if verb != "heal":
            return
        t = threading.Thread(target=self._after_heal, daemon=True, name="prepared-xacts")
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        """Nothing to stop: sampling after a heal ends by itself (waited for in final_read)."""

    def final_read(self) -> None:
        """Wait (bounded) for the after-heal sampling, then one last round."""
        end = time.monotonic() + self.max_wait_s + 5.0
        for t in self._threads:
            t.join(timeout=max(0.0, end - time.monotonic()))
        self._stop.set()
        with contextlib.suppress(Exception):
            self.round()
