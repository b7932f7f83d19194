"""Direct probes of every coordinator, bypassing the router: is it writable
(not in recovery)? Sampled through `docker exec` so that a node cut off the
network is still seen. Each round is one op (f "writable") with the set of
writable nodes; the split-brain checker reads them."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from harness.history import HistoryWriter

if TYPE_CHECKING:
    from harness.stack.stack import Stack

WRITABLE_PROBE = 3
QUERY = ["psql", "-h", "/var/run/postgresql", "-U", "postgres", "-d", "postgres", "-tAc",
         "SELECT NOT pg_is_in_recovery()"]


class WritableProbe:
    """Samples each node's writability every `period_s` until stopped (bounded)."""

    def __init__(self, stack: Stack, nodes: tuple[str, ...], history: HistoryWriter,
                 period_s: float = 0.5, max_duration_s: float = 600.0) -> None:
        self.stack = stack
        self.nodes = nodes
        self.history = history
        self.period_s = period_s
        self.max_duration_s = max_duration_s
        self.rounds = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _writable(self, node: str) -> bool | None:
        rc, out = self.stack.exec(node, QUERY, user="postgres", timeout=3)
        if rc != 0:
            return None  # PostgreSQL not answering: not writable
        return out.strip().splitlines()[-1:] == ["t"]

    def _loop(self) -> None:
        deadline = time.monotonic() + self.max_duration_s
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            while not self._stop.is_set() and time.monotonic() < deadline:
                self.history.append(WRITABLE_PROBE, "invoke", "writable", None)
                states = dict(zip(self.nodes, pool.map(self._writable, self.nodes), strict=True))
                writable = sorted(n for n, w in states.items() if w)
                self.history.append(WRITABLE_PROBE, "ok", "writable", writable)
                self.rounds += 1
                self._stop.wait(self.period_s)

    def start(self) -> WritableProbe:
        self._thread = threading.Thread(target=self._loop, name="writable-probe", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
