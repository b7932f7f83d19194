"""The recovery-timeline recorder: what each component says, sampled at >= 5 Hz,
so that a fault's RTO can be split into phases (harness.checkers.phases).

Three kinds of samples, each an op of process ``"observer"`` recorded only when
its state changes (plus a first sample), so histories stay small:

- f ``phase-cluster``: Patroni's ``/cluster`` (the DCS view) of each Patroni
  group (the coordinator's, and each Citus worker group's: a lane each):
  ``{"leader": name | None, "members": {name: [role, state]}, "group", "role"}``;
  ``fail`` (value ``{"group", "role"}``) when no member's REST API answers.
- f ``phase-pg``, node = member: that member's postmaster, asked directly
  (``pg_is_in_recovery()`` on its published port): ``{"member", "state"}`` with
  state ``primary`` / ``replica`` (``ok``) or ``down`` (``fail``).
- f ``phase-write``, node = ``router`` (``pooler`` in older histories): a write (an upsert into
  ``pgchaos.phase_probe``, on a fresh connection, several may be in flight)
  through that service's published port, from the first injected fault on:
  ``ok`` (value ``{"via", "latency_s"}``, and ``"slow": true`` when it took
  longer than ``SLOW_S`` — a write the pooler queued), or ``fail`` with the error.

Every loop is bounded in time and count and stops by itself; only ports
published on 127.0.0.1 are used (``Stack.dsn`` / ``Stack.patroni_url``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import requests

from harness.errors import PgchaosError
from harness.history import OBSERVER, HistoryWriter
from harness.stack.manifest import LOAD_SCHEMA

if TYPE_CHECKING:
    from harness.stack.stack import Stack

PHASE_CLUSTER: Final = "phase-cluster"
PHASE_PG: Final = "phase-pg"
PHASE_WRITE: Final = "phase-write"
PHASE_FS: Final = frozenset({PHASE_CLUSTER, PHASE_PG, PHASE_WRITE})
MAX_IN_FLIGHT: Final = 8  # writes per path at once (each bounded by its timeouts)
SLOW_S: Final = 1.0  # a write slower than this is recorded (a queued write is a state of its own)
WRITE_TIMEOUT_MS: Final = 2000
PROBE_TABLE: Final = f"{LOAD_SCHEMA}.phase_probe"
CREATE_SQL: Final = (f"CREATE TABLE IF NOT EXISTS {PROBE_TABLE} "
                     "(via text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())")
UPSERT_SQL: Final = (f"INSERT INTO {PROBE_TABLE} (via) VALUES (%s) "
                     "ON CONFLICT (via) DO UPDATE SET at = now()")
FALLBACK_SQL: Final = "SELECT txid_current()"  # fails on a standby; used when the table cannot be made


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]


class PhaseRecorder:
    """Samples the cluster, each member's postmaster and writes through the router
    and pooler, each in its own thread, every ``period_s``, until stopped or for at
    most ``max_duration_s`` / ``max_samples`` samples per thread."""

    def __init__(self, stack: Stack, history: HistoryWriter, period_s: float = 0.2,
                 max_duration_s: float = 1800.0, max_samples: int = 20_000) -> None:
        if period_s > 0.2:
            raise ValueError(f"period_s must be <= 0.2 (>= 5 Hz), got {period_s}")
        self.stack = stack
        self.history = history
        self.period_s = period_s
        self.max_duration_s = max_duration_s
        self.max_samples = max_samples
        self.samples = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._writers: list[threading.Thread] = []  # started by start_writes()
        self._writers_lock = threading.Lock()
        self._lock = threading.Lock()

    # -- recording ---------------------------------------------------------------
    def _record(self, typ: str, f: str, value: Any, node: str | None = None, error: Any = None) -> None:
        with contextlib.suppress(ValueError):  # the history was closed under a late sample
            self.history.append(OBSERVER, typ, f, value, node=node, error=error)  # type: ignore[arg-type]

    def _loop(self, sample: Callable[[], tuple[Any, str, Any, Any]], f: str, node: str | None) -> None:
        """Call ``sample`` every period; record (type, value, error) when its state key changes."""
        deadline = time.monotonic() + self.max_duration_s
        last: Any = object()
        n = 0
        next_at = time.monotonic()
        while not self._stop.is_set() and n < self.max_samples and time.monotonic() < deadline:
            try:
                key, typ, value, error = sample()
            except Exception as exc:  # a sampler bug must not kill the run
                key, typ, value, error = ("error", type(exc).__name__), "fail", None, _short(exc)
            n += 1
            if key != last:
                self._record(typ, f, value, node, error)
                last = key
            next_at += self.period_s
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()
        with self._lock:
            self.samples += n

    # -- samplers --------------------------------------------------------------------
    def _cluster_sampler(self, urls: list[str], group: str | None = None,
                         role: str | None = None) -> Callable[[], tuple[Any, str, Any, Any]]:
        session = requests.Session()
        order = list(urls)
        tag = {} if group is None else {"group": group, "role": role}

        def sample() -> tuple[Any, str, Any, Any]:
            errors = []
            for url in list(order):
                try:
                    resp = session.get(f"{url}/cluster", timeout=0.5)
                    resp.raise_for_status()
                    doc = resp.json()
                except (requests.RequestException, ValueError) as exc:
                    errors.append(type(exc).__name__)
                    order.remove(url)
                    order.append(url)  # try the ones that answer first next time
                    continue
                members = {str(m.get("name")): [m.get("role"), m.get("state")] for m in doc.get("members", [])}
                leaders = [n for n, (role, _) in members.items() if role in ("leader", "master", "primary")]
                value = {"leader": leaders[0] if len(leaders) == 1 else None, "members": members, **tag}
                return ("ok", repr(sorted(members.items()))), "ok", value, None
            return ("fail",), "fail", (tag or None), f"no Patroni REST API answered ({', '.join(errors)})"

        return sample

    def _pg_sampler(self, member: str, dsn: str,
                    group: str | None = None) -> Callable[[], tuple[Any, str, Any, Any]]:
        import psycopg

        holder: dict[str, Any] = {"conn": None}
        tag = {} if group is None else {"group": group}

        def sample() -> tuple[Any, str, Any, Any]:
            try:
                conn = holder["conn"]
                if conn is None or conn.closed or conn.broken:
                    holder["conn"] = conn = psycopg.connect(dsn, autocommit=True)
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            except psycopg.Error as exc:
                with contextlib.suppress(Exception):
                    if holder["conn"] is not None:
                        holder["conn"].close()
                holder["conn"] = None
                return "down", "fail", {"member": member, "state": "down", **tag}, _short(exc)
            state = "replica" if row and row[0] else "primary"
            return state, "ok", {"member": member, "state": state, **tag}, None

        return sample

    def _write_once(self, via: str, dsn: str, sql: str) -> tuple[Any, str, Any, Any]:
        """One write on a fresh connection: (state key, op type, value, error)."""
        import psycopg

        notices: list[str] = []
        start = time.monotonic()
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
                with conn.transaction():
                    conn.execute(f"SET LOCAL statement_timeout = {WRITE_TIMEOUT_MS}")
                    conn.execute(sql, (via,) if "%s" in sql else None)
        except psycopg.Error as exc:
            return "fail", "fail", {"via": via}, _short(exc)
        latency = round(time.monotonic() - start, 3)
        if any("synchronous replication" in n for n in notices):  # committed locally only
            return "fail", "fail", {"via": via, "latency_s": latency}, "not replicated to the sync standby"
        value: dict[str, Any] = {"via": via, "latency_s": latency}
        if latency > SLOW_S:
            value["slow"] = True
        return ("slow" if latency > SLOW_S else "ok"), "ok", value, None

    def _write_loop(self, via: str, dsn: str, sql: str) -> None:
        """A write every period, each on its own connection and thread, at most
        ``MAX_IN_FLIGHT`` at once: one write hung in a queue does not blind the
        sampler; the first to complete after recovery marks it. Recorded on change."""
        deadline = time.monotonic() + self.max_duration_s
        in_flight = threading.Semaphore(MAX_IN_FLIGHT)
        lock = threading.Lock()
        last: list[Any] = [object()]

        def attempt() -> None:
            try:
                key, typ, value, error = self._write_once(via, dsn, sql)
                with lock:
                    if key != last[0]:
                        self._record(typ, PHASE_WRITE, value, via, error)
                        last[0] = key
            except Exception:  # noqa: S110 - a sampler bug must not kill the run
                pass
            finally:
                in_flight.release()

        n = 0
        next_at = time.monotonic()
        while not self._stop.is_set() and n < self.max_samples and time.monotonic() < deadline:
            if in_flight.acquire(blocking=False):
                threading.Thread(target=attempt, name=f"phase-write-{via}", daemon=True).start()
                n += 1
            next_at += self.period_s
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()
        with self._lock:
            self.samples += n

    # -- lifecycle ---------------------------------------------------------------------
    def _write_sql(self, dsn: str) -> str:
        import psycopg

        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(CREATE_SQL)
            return UPSERT_SQL
        except psycopg.Error:
            return FALLBACK_SQL

    def start(self) -> PhaseRecorder:
        """Resolve the published endpoints now (a stopped member has none later) and start sampling."""
        m = self.stack.manifest
        coordinator = m.coordinator
        loops: list[tuple[str, Callable[[], tuple[Any, str, Any, Any]], str | None]] = []
        # every Patroni group its own lane (Citus worker groups too); the coordinator first
        groups = [coordinator] + [g for g in m.patroni_groups if g.name != coordinator.name]
        for group in groups:
            role = "coordinator" if group.name == coordinator.name else group.role
            if group.patroni:
                urls = []
                for member in group.members:
                    with contextlib.suppress(PgchaosError, Exception):
                        urls.append(self.stack.patroni_url(member))
                if urls:
                    loops.append((PHASE_CLUSTER, self._cluster_sampler(urls, group.name, role), None))
            for member in group.members:
                try:
                    dsn = self.stack.dsn(member, connect_timeout=2)
                except Exception:  # noqa: S112 - a member without a published port is not sampled
                    continue
                loops.append((PHASE_PG, self._pg_sampler(member, dsn, group.name), member))
        # through the router only: fresh logins through PgBouncer at 5 Hz can trip its cached
        # server-login error ("server login has been failing") for every client after a heal;
        # when the pooler serves again shows in the clients' own writes (phase "clients")
        paths = [("router", self.stack.dsn(via="router"))]
        sql = self._write_sql(paths[0][1])
        threads = [threading.Thread(target=self._loop, args=(sample, f, node),
                                    name=f"phase-{node or 'cluster'}", daemon=True)
                   for f, sample, node in loops]
        self._writers = [threading.Thread(target=self._write_loop, args=(via, dsn, sql),
                                          name=f"phase-{via}", daemon=True) for via, dsn in paths]
        for t in threads:
            t.start()
            self._threads.append(t)
        return self

    def start_writes(self) -> None:
        """Start the writes through the router and pooler (once; at the first fault): they take
        client slots in the pooler, so a run that injects no fault (a capacity drive) never
        shares its pooler with them."""
        with self._writers_lock:
            writers, self._writers = self._writers, []
        for t in writers:
            if not self._stop.is_set():
                t.start()
                self._threads.append(t)

    def stop(self, join_s: float = 5.0) -> None:
        """Stop every sampler; waits at most ``join_s`` in all (a queued write may still be pending)."""
        self._stop.set()
        deadline = time.monotonic() + join_s
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> PhaseRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
