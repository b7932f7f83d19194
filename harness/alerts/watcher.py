"""Record alert notifications as ``monitor`` ops while a scenario runs.

Ops (process ``"monitor"``, type ``info``):

- ``watch``: ``{"state": "start" | "end", "source": ..., "firing": [alerts]}``,
  the window in which notifications were read and what was firing at its edges;
- ``alert``: one transition, ``{"alert", "status": "firing" | "resolved",
  "severity", "labels", "summary", "fingerprint", "starts_at"}``, timed when
  the notification arrived;
- ``expect-alerts`` (written by the scenario, see ScenarioRun.expect_alerts).

Polling is bounded: a period, a maximum duration, and it stops by itself.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from harness.alerts.feed import Alert, AlertFeed
from harness.errors import PgchaosError
from harness.history import MONITOR, HistoryWriter


class AlertWatcher:
    """Polls a feed in a thread; writes each alert transition to ``history``.

    ``wall_zero`` is the epoch time of the history's t=0, so a notification's
    arrival lands on the same timeline as the faults.
    """

    def __init__(self, feed: AlertFeed, history: HistoryWriter, wall_zero: float,
                 period_s: float = 0.5, max_s: float = 3 * 3600,
                 on_alert: Callable[[Alert], None] | None = None) -> None:
        self.feed = feed
        self.history = history
        self.wall_zero = wall_zero
        self.period_s = period_s
        self.max_s = max_s
        self.on_alert = on_alert
        self.firing: dict[str, Alert] = {}  # fingerprint -> its firing notification
        self.initial: set[str] = set()  # fingerprints firing when the watch started
        self.seen: list[Alert] = []  # every transition recorded, in order
        self.errors = 0
        self.last_error = ""
        self._last_t = 0.0
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()  # one reader of the feed at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _t(self, wall: float) -> float:
        self._last_t = max(self._last_t, wall - self.wall_zero)  # one file, time never goes back
        return round(self._last_t, 3)

    def start(self) -> AlertWatcher:
        """Record what fires now (the watch's start), then poll in the background."""
        initial = self.feed.poll()
        with self._lock:
            for a in initial:
                if a.status == "firing":
                    self.firing[a.fingerprint] = a
            self.initial = set(self.firing)
            self.history.append(MONITOR, "info", "watch", {
                "state": "start", "source": self.feed.source,
                "firing": [a.as_value() for a in self.firing.values()]}, time=self._t(time.time()))
        self._thread = threading.Thread(target=self._run, name="pgchaos-alerts", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_s
        while not self._stop.wait(self.period_s) and time.monotonic() < deadline:
            with contextlib.suppress(PgchaosError):
                self.poll()

    def poll(self) -> list[Alert]:
        """Read the feed once; record and return the transitions."""
        with self._poll_lock:
            try:
                alerts = self.feed.poll()
            except PgchaosError as exc:
                self.errors += 1
                self.last_error = str(exc)
                raise
            changed = self._record(alerts)
            if getattr(self.feed, "resynced", False):
                changed += self._resync({a.fingerprint for a in alerts if a.status == "firing"})
        for a in changed:
            if self.on_alert is not None:
                with contextlib.suppress(Exception):
                    self.on_alert(a)
        return changed

    def _record(self, alerts: list[Alert]) -> list[Alert]:
        changed = []
        with self._lock:
            for a in sorted(alerts, key=lambda x: x.received):
                was = a.fingerprint in self.firing
                if a.status == "firing" and not was:
                    self.firing[a.fingerprint] = a
                elif a.status == "resolved" and was:
                    del self.firing[a.fingerprint]
                else:
                    continue  # a repeat of what is already known
                self.history.append(MONITOR, "info", "alert", a.as_value(), time=self._t(a.received))
                self.seen.append(a)
                changed.append(a)
        return changed

    def _resync(self, firing_now: set[str]) -> list[Alert]:
        """The monitoring itself was replaced: alerts it no longer holds are recorded as
        resolved, marked ``resync`` (their resolution was not notified)."""
        gone = []
        with self._lock:
            now = time.time()
            for fp in [fp for fp in self.firing if fp not in firing_now]:
                a = self.firing.pop(fp)
                done = Alert(a.name, "resolved", now, a.labels, a.summary, a.fingerprint, a.starts_at)
                self.history.append(MONITOR, "info", "alert", {**done.as_value(), "resync": True},
                                    time=self._t(now))
                self.seen.append(done)
                gone.append(done)
        return gone

    def firing_names(self) -> list[str]:
        with self._lock:
            return sorted({a.name for a in self.firing.values()})

    def raised_names(self) -> list[str]:
        """Alerts firing now that were not firing when the watch started."""
        with self._lock:
            return sorted({a.name for fp, a in self.firing.items() if fp not in self.initial})

    def wait_quiet(self, timeout_s: float) -> bool:
        """Poll until every alert raised during the watch has resolved; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(PgchaosError):
                self.poll()
            if not self.raised_names():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(self.period_s)

    def stop(self) -> dict[str, Any]:
        """Stop polling (after a last read); record the watch's end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with contextlib.suppress(PgchaosError):
            self.poll()
        with self._lock:
            value = {"state": "end", "source": self.feed.source,
                     "firing": [a.as_value() for a in self.firing.values()],
                     "feed_errors": self.errors}
            self.history.append(MONITOR, "info", "watch", value, time=self._t(time.time()))
        return value
