"""Locust users for pgchaos: a writer, a reader and a vector-search user over
psycopg 3 through PgBouncer on 127.0.0.1. Every operation is recorded in this
process's history file (on the run's shared monotonic timeline) and reported
to locust's statistics.

Run by harness.load.locust_runner as a subprocess; configured by environment:
PGCHAOS_DSN, PGCHAOS_HISTORY, PGCHAOS_RUN_START, PGCHAOS_KEY_BASE,
PGCHAOS_PACING_S, PGCHAOS_PROCESS_BASE, PGCHAOS_PIPELINE (writers send the
statements before COMMIT in one round trip unless it is "0"), PGCHAOS_START_GATE
(a file: the users wait for it to exist before their first connection, so the
harness can start this process while it still checks the steady state).

psycopg waits for its socket through gevent's emulation of select.poll here
(a poll object, watchers and a Timeout per wait); `wait_gevent` waits on one
libev io watcher instead, the same protocol as psycopg's own wait functions,
at about two thirds of the CPU per operation.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections import deque

import gevent
from gevent.hub import Waiter
from locust import User, constant_pacing, events, task
from locust.exception import StopUser
from psycopg import errors as pg_errors
from psycopg import waiting

from harness.history import HistoryWriter
from harness.load.client import PROCESS_SPAN, Client

DSN = os.environ.get("PGCHAOS_DSN", "host=127.0.0.1 port=6432 dbname=distributed_postgres_cluster "
                     "user=dpg_cluster password=dpg_cluster_pw connect_timeout=2")
PACING_S = float(os.environ.get("PGCHAOS_PACING_S", "0.1"))
KEY_BASE = int(os.environ.get("PGCHAOS_KEY_BASE", "0"))
RUN_START = float(os.environ.get("PGCHAOS_RUN_START", str(time.monotonic())))
HISTORY = HistoryWriter(os.environ.get("PGCHAOS_HISTORY", f"history-locust-{os.getpid()}.jsonl"),
                        run_start=RUN_START)
PIPELINE = os.environ.get("PGCHAOS_PIPELINE", "1") != "0"
PROCESS_IDS = itertools.count(int(os.environ.get("PGCHAOS_PROCESS_BASE", "100")))
ACKED: deque[int] = deque(maxlen=5000)  # keys acknowledged by writers, for readers
START_GATE = os.environ.get("PGCHAOS_START_GATE", "")
START_GATE_WAIT_S = 900.0  # a gate never opened: the users give up (the harness stops the process first)


def wait_for_start_gate() -> None:
    """Hold a user until the harness opens the start gate (bounded; no gate: go at once)."""
    if not START_GATE:
        return
    deadline = time.monotonic() + START_GATE_WAIT_S
    while not os.path.exists(START_GATE):
        if time.monotonic() > deadline:
            raise StopUser()
        gevent.sleep(0.02)


def wait_gevent(gen, fileno: int, interval: float = 0.0, timeout: float | None = None):  # noqa: ANN201
    """psycopg's `waiting.wait` contract on gevent's loop: drive `gen`, sending it
    the ready flags of `fileno` (or none after `interval`); `_WaitTimeout` past `timeout`."""
    if interval is None:
        raise ValueError("indefinite wait not supported")
    deadline = time.monotonic() + timeout if timeout is not None else None
    loop = gevent.get_hub().loop
    try:
        s = next(gen)
        while True:
            wait_s = interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic()))
            waiter = Waiter()  # a late callback reaches this waiter, never a later wait
            watcher, timer = loop.io(fileno, int(s)), loop.timer(wait_s)
            try:
                watcher.start(waiter.switch, pass_events=True)
                timer.start(waiter.switch, 0)
                ready = waiter.get()
            finally:
                watcher.close()
                timer.close()
            s = gen.send(ready & 3)  # libev READ/WRITE are psycopg's Ready.R/W
            if deadline is not None and time.monotonic() >= deadline:
                raise pg_errors._WaitTimeout("wait timeout expired")
    except StopIteration as ex:
        return ex.value


if os.environ.get("PGCHAOS_GEVENT_WAIT", "1") != "0":
    waiting.wait = wait_gevent


@events.quit.add_listener
def _close_history(**_kwargs) -> None:
    """After the runner stopped its users (`quitting` fires before: a user still
    stopping would write to a closed file)."""
    HISTORY.close()


class PgchaosUser(User):
    """Base: one recording Client per simulated user."""

    abstract = True
    wait_time = constant_pacing(PACING_S)
    pipeline = False

    def on_start(self) -> None:
        wait_for_start_gate()
        self.process = next(PROCESS_IDS)
        self.client = Client(DSN, HISTORY, self.process, pipeline=self.pipeline, prepare=not self.pipeline)
        self.counter = 0
        self.rng = random.Random(self.process)

    def on_stop(self) -> None:
        self.client.close()

    def _report(self, kind: str, name: str, started: float, outcome: str) -> None:
        events.request.fire(
            request_type=kind, name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=0, exception=None if outcome == "ok" else RuntimeError(outcome),
            context={},
        )


class WriterUser(PgchaosUser):
    """Inserts unique keys into the distributed `events` table."""

    pipeline = PIPELINE

    @task
    def write(self) -> None:
        key = KEY_BASE + self.process * PROCESS_SPAN + self.counter
        self.counter += 1
        started = time.perf_counter()
        outcome = self.client.write(key, "events")
        if outcome == "ok":
            ACKED.append(key)
        self._report("write", "events", started, outcome)


class ReaderUser(PgchaosUser):
    """Reads back keys the writers had acknowledged."""

    @task
    def read(self) -> None:
        key = self.rng.choice(ACKED) if ACKED else KEY_BASE
        started = time.perf_counter()
        self._report("read", "events", started, self.client.read(key, "events"))


class VectorUser(PgchaosUser):
    """The guide's vector search: ORDER BY embedding <=> ... LIMIT 5."""

    @task
    def search(self) -> None:
        started = time.perf_counter()
        self._report("vector-search", "vectors", started, self.client.vector_search(self.rng))
