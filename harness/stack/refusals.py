"""Refusals by configuration: a member that pg_hba or a password keeps turning away
does not recover by itself. Seeing one logged again and again is reason enough to stop
waiting for the stack (at start-up or for its steady state) and say why."""

from __future__ import annotations

import re
import time
from typing import Final

REFUSED: Final = re.compile(r"no pg_hba\.conf entry|pg_hba\.conf rejects|password authentication failed")
REFUSED_FOR_S: Final = 20.0  # refused this long, with new log lines of it arriving: hopeless
QUIET_S: Final = 10.0  # no new line of a refusal for this long: it has stopped (a transient at start-up)


class RefusalWatch:
    """Fed what the members log (or what the failing checks say), it names a refusal once
    new lines of it have kept arriving for :data:`REFUSED_FOR_S` (at least two distinct
    ones, the last within :data:`QUIET_S`). Lines it saw before do not count again: an
    old refusal still in a log's tail is not a refusal now."""

    def __init__(self, for_s: float = REFUSED_FOR_S, quiet_s: float = QUIET_S) -> None:
        self.for_s, self.quiet_s = for_s, quiet_s
        self.since: float | None = None
        self.last_new: float | None = None
        self.seen: set[str] = set()
        self.fresh = 0

    def see(self, lines: set[str], now: float | None = None) -> str | None:
        """The refusal to give up on (its newest line), or None to keep waiting."""
        now = time.monotonic() if now is None else now
        new = {line for line in lines if REFUSED.search(line)} - self.seen
        self.seen |= new
        if new:
            if self.since is None or self.last_new is None or now - self.last_new > self.quiet_s:
                self.since, self.fresh = now, 0  # a refusal (again) after a quiet spell: start over
            self.last_new = now
            self.fresh += 1
        elif self.last_new is None or now - self.last_new > self.quiet_s:
            self.since, self.fresh = None, 0
            return None
        assert self.since is not None
        if now - self.since >= self.for_s and self.fresh >= 2:
            return max(new or self.seen)
        return None
