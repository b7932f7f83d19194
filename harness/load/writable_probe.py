"""Direct probes of every coordinator, bypassing the router and the network
(`docker exec`, so a partitioned node is still seen): is it a primary (not in
recovery), and does it acknowledge a write (an INSERT, which writes WAL and so
waits for the synchronous standby, commits within 2 s)? Each round is one op
(f "writable", value {"primaries": [...], "acknowledging": [...]}); the
split-brain checker reads them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from harness.history import HistoryWriter

if TYPE_CHECKING:
    from harness.stack.stack import Stack

WRITABLE_PROBE = 3
ACK_TIMEOUT_S = 2
# txid_current() alone writes no WAL and never waits for the standby: use a real insert.
WRITE_SQL = ("CREATE TABLE IF NOT EXISTS pgchaos_write_probe (at timestamptz DEFAULT now()); "
             "INSERT INTO pgchaos_write_probe DEFAULT VALUES")
PROBE_SCRIPT = (
    'export PGHOST=/var/run/postgresql PGUSER=postgres PGDATABASE=postgres; '
    f'r=$(timeout -s KILL {ACK_TIMEOUT_S} psql -XtAc "SELECT pg_is_in_recovery()" 2>/dev/null) '
    '|| { echo down; exit 0; }; '
    'if [ "$r" = f ]; then '
    f'  if timeout -s KILL {ACK_TIMEOUT_S} psql -XtAc "{WRITE_SQL}" >/dev/null 2>&1; '
    '  then echo ack; else echo primary; fi; '
    'else echo replica; fi'
)


# a member's state from several containers (a cut-off host may still run one): the strongest
RANK = {"down": 0, "replica": 1, "primary": 2, "ack": 3}


def state_of(rc: int, out: str) -> str:
    """The probe script's answer: ack, primary, replica or down."""
    lines = out.strip().splitlines()
    return lines[-1] if rc == 0 and lines and lines[-1] in RANK else "down"


class WritableProbe:
    """Samples each node every `period_s` until stopped (bounded by max_duration_s).
    `states` (optional): member, script -> the states of every container that runs it
    (default: the member's one container, through the stack's engine)."""

    def __init__(self, stack: Stack, nodes: tuple[str, ...], history: HistoryWriter,
                 period_s: float = 0.5, max_duration_s: float = 600.0,
                 states: Callable[[str, str], list[str]] | None = None) -> None:
        self.stack = stack
        self.states = states
        self.nodes = nodes
        self.history = history
        self.period_s = period_s
        self.max_duration_s = max_duration_s
        self.rounds = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _state(self, node: str) -> str:
        if self.states is not None:
            return max(self.states(node, PROBE_SCRIPT) or ["down"], key=lambda s: RANK.get(s, 0))
        rc, out = self.stack.exec(node, ["sh", "-c", PROBE_SCRIPT], timeout=ACK_TIMEOUT_S + 3)
        return state_of(rc, out)

    def _loop(self) -> None:
        deadline = time.monotonic() + self.max_duration_s
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            while not self._stop.is_set() and time.monotonic() < deadline:
                self.history.append(WRITABLE_PROBE, "invoke", "writable", None)
                states = dict(zip(self.nodes, pool.map(self._state, self.nodes), strict=True))
                self.history.append(WRITABLE_PROBE, "ok", "writable", {
                    "primaries": sorted(n for n, s in states.items() if s in ("ack", "primary")),
                    "acknowledging": sorted(n for n, s in states.items() if s == "ack"),
                })
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
