"""The high-frequency probe that gives RTO its resolution: one writer and one
reader thread, each issuing an op every `period_s` (>= 20 ops/s each by
default) through PgBouncer, recorded in the run's history."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from harness.history import HistoryWriter
from harness.load.client import PROCESS_SPAN, Client

PROBE_WRITER = 1
PROBE_READER = 2


@dataclass
class ProbeStats:
    ops: int = 0
    started: float = 0.0
    stopped: float = 0.0
    periods: list[float] = field(default_factory=list)

    @property
    def mean_period_s(self) -> float:
        return (self.stopped - self.started) / self.ops if self.ops else float("nan")


class Probe:
    """Writes ledger keys and reads the last acknowledged one, until stopped
    or until `max_duration_s` / `max_ops` (every loop is bounded)."""

    def __init__(self, dsn: str, history: HistoryWriter, key_base: int,
                 period_s: float = 0.04, max_duration_s: float = 1800.0,
                 max_ops: int = 200_000, process_offset: int = 0) -> None:
        self.dsn = dsn
        self.history = history
        self.key_base = key_base
        self.period_s = period_s
        self.max_duration_s = max_duration_s
        self.max_ops = max_ops
        self.process_offset = process_offset  # a resumed probe writes keys of its own
        self._stop = threading.Event()
        self._last_acked: int | None = None
        self._threads: list[threading.Thread] = []
        self.stats = {"write": ProbeStats(), "read": ProbeStats()}
        self.last_failure = {"write": 0.0, "read": 0.0}  # monotonic time of the last fail/info
        self.last_ok = {"write": 0.0, "read": 0.0}

    def _loop(self, kind: str) -> None:
        process = (PROBE_WRITER if kind == "write" else PROBE_READER) + self.process_offset
        client = Client(self.dsn, self.history, process, statement_timeout_ms=2000)
        stats = self.stats[kind]
        stats.started = time.monotonic()
        deadline = stats.started + self.max_duration_s
        counter = 0
        next_at = stats.started
        try:
            while not self._stop.is_set() and counter < self.max_ops and time.monotonic() < deadline:
                if kind == "write":
                    key = self.key_base + process * PROCESS_SPAN + counter
                    outcome = client.write(key, "ledger")
                    if outcome == "ok":
                        self._last_acked = key
                else:
                    target = self._last_acked
                    outcome = client.read(target if target is not None else self.key_base, "ledger")
                if outcome == "ok":
                    self.last_ok[kind] = time.monotonic()
                else:
                    self.last_failure[kind] = time.monotonic()
                counter += 1
                next_at += self.period_s
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_at = time.monotonic()
        finally:
            stats.ops = counter
            stats.stopped = time.monotonic()
            client.close()

    def stable_for(self, seconds: float) -> bool:
        """Writes and reads have succeeded, with no failure, for the last `seconds`."""
        now = time.monotonic()
        return all(self.last_ok[k] > self.last_failure[k] and now - self.last_failure[k] >= seconds
                   and now - self.last_ok[k] < 1.0 for k in ("write", "read"))

    def start(self) -> Probe:
        for kind in ("write", "read"):
            t = threading.Thread(target=self._loop, args=(kind,), name=f"probe-{kind}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)

    def __enter__(self) -> Probe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
