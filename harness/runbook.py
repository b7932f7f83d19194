"""A runbook executed by a scenario: each step recorded, in the history and in the report.

`Runbook` runs SQL steps on the coordinator (through the router, so it follows
the leader) or wraps a step that is not SQL (a node brought back, a container
started, a wait). Each step's span is an observer op ``runbook-step`` in the
history, so that client failures while it runs are attributed to it and judged
against the row it names, else the scenario's (harness.checkers.runbook_steps).
A step is the guide's as written, the working procedure that replaces it, or
what was observed (Patroni acting on its own).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from harness.checkers.runbook_steps import RUNBOOK_STEP
from harness.history import OBSERVER
from harness.stack import citus
from harness.targets import load_targets

GUIDE = "guide, as written"
WORKING = "working procedure"
OBSERVED = "observed"


def wait_for(what: str, predicate: Callable[[], Any], timeout_s: float,
             interval_s: float = 1.0) -> tuple[bool, Any]:
    """Poll (bounded) until predicate() is truthy; (held, last value). `what` names it for readers."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            last = predicate()
            if last:
                return True, last
        time.sleep(interval_s)
    return False, last


class Runbook:
    """Runs SQL steps on the coordinator (through the router) and records each one in `steps`."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.dsn = run.stack.dsn(via="router", connect_timeout=5)
        self.steps: list[dict[str, Any]] = []

    def sql(self, label: str, sql: str, params: Any = None, guide: bool = True,
            timeout_s: int = 240, dsn: str | None = None) -> dict[str, Any]:
        """Run one step (on the coordinator, or on `dsn`); a refusal is recorded (ok False,
        the server's or the pooler's error), never raised."""
        self.run.phase("runbook", step=label, guide=guide)
        self._record(label, "begin", guide=guide)
        step: dict[str, Any] = {"step": label, "source": GUIDE if guide else WORKING,
                                "sql": sql if params is None else f"{sql} -- {params}",
                                "at_s": round(self.run.now(), 2)}
        started = time.monotonic()
        try:
            with psycopg.connect(dsn or self.dsn, autocommit=True) as conn:
                conn.execute(f"SET statement_timeout = {int(timeout_s) * 1000}")
                cur = conn.execute(sql, params)
                rows = cur.fetchall() if cur.description else []
            step.update(ok=True, result=[list(map(str, r)) for r in rows][:20])
        except psycopg.Error as exc:
            step.update(ok=False, error=citus.error_text(exc))
        step["seconds"] = round(time.monotonic() - started, 2)
        self._record(label, "end", ok=step["ok"], **({"error": step["error"]} if not step["ok"] else {}))
        self.steps.append(step)
        return step

    @contextlib.contextmanager
    def step(self, label: str, guide: bool = False, row: str | None = None) -> Iterator[None]:
        """A step that is not SQL (containers started, a wait), its span in the history.
        `row`: the targets row that judges what fails while it runs, when that is not the
        scenario's (a host's return that brings back a worker it held: worker-failure)."""
        self.run.phase("runbook", step=label, guide=guide)
        judged_by: dict[str, Any] = {}
        if row is not None:
            target = load_targets(getattr(getattr(self.run, "options", None), "targets_path", None)).row(row)
            judged_by = {"row": target.row, "rto_s": target.rto_s}
        self._record(label, "begin", guide=guide, **judged_by)
        try:
            yield
        except Exception as exc:
            self._record(label, "end", ok=False, error=f"{type(exc).__name__}: {exc}"[:300])
            raise
        self._record(label, "end", ok=True)

    def _record(self, label: str, state: str, **value: Any) -> None:
        """The step in the history (observer op ``runbook-step``), so that client failures
        while it runs are attributed to it (harness.checkers.runbook_steps)."""
        history = getattr(self.run, "history", None)
        if history is not None and not history.closed:
            history.append(OBSERVER, "info", RUNBOOK_STEP, {"step": label, "state": state, **value})

    def note(self, label: str, guide: bool = False, observed: bool = False, ok: bool = True,
             error: str | None = None, **detail: Any) -> None:
        """A step that is not SQL (a script, a container started, what Patroni did on its own),
        recorded like the others; `ok` False with `error` for one that failed."""
        self.run.phase("runbook", step=label, guide=guide)
        self._record(label, "begin", guide=guide)
        self._record(label, "end", ok=ok, **({"error": error} if error is not None else {}))
        source = GUIDE if guide else OBSERVED if observed else WORKING
        self.steps.append({"step": label, "source": source, "at_s": round(self.run.now(), 2), "ok": ok,
                           **({"error": error} if error is not None else {}), **detail})

    def failed_guide_steps(self) -> list[dict[str, str]]:
        """The guide's steps that failed as written, with the error: the findings."""
        return [{"step": s["step"], "error": s["error"]} for s in self.steps
                if s["source"] == GUIDE and not s["ok"]]


def describe(steps: list[dict[str, Any]]) -> str:
    """Recorded steps as lines for a person: label, outcome, and the result or the error."""
    lines = []
    for s in steps:
        if not s["ok"]:
            tag = "FINDING (fails as written)" if s["source"] == GUIDE else "FAILED"
            lines.append(f"{s['step']}: {tag}: {s['error']}")
            continue
        shown = s.get("result")
        if shown is None:
            shown = {k: v for k, v in s.items() if k not in ("step", "source", "at_s", "ok")}
        label = "" if s["source"] == GUIDE else f" [{s['source']}]"
        lines.append(f"{s['step']}{label}: ok {json.dumps(shown, default=str)[:300]}")
    return "\n".join(lines)
