"""Runbook steps as phases: client failures during a step are that step's.

A runbook (the guide's worker replacement, a node disabled and removed, shard
moves, a rebalance) records each step in the history: an observer op
``runbook-step`` with ``value.state`` ``begin`` and then ``end`` (``value.ok``,
``value.error``). A write or read that was invoked while a step ran and failed
is attributed to that step instead of being an unexplained failure after
recovery; per step and op kind the checker measures the unavailability it
caused (from the first failing op's invocation to the next ``ok`` of that kind
after the step's last failure), which the verdict judges against the
scenario's row — or against the row the step's ``begin`` names (``value.row``
and ``value.rto_s``, e.g. worker-failure for a host's return that brings back a
worker it held).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final

from harness.history import OBSERVER, Op, pair_invocations

RUNBOOK_STEP: Final = "runbook-step"
FINAL_READER: Final = 0


@dataclass(frozen=True, slots=True)
class StepWindow:
    """One runbook step: its label, when it ran, whether the guide wrote it, how it ended."""

    step: str
    begin: float
    end: float
    guide: bool
    ok: bool | None
    error: str | None
    row: str | None = None  # the targets row that judges this step, when not the scenario's
    rto_s: float | None = None


def step_windows(ops: Sequence[Op]) -> list[StepWindow]:
    """Every runbook step of the history, begin to end (a step never ended runs to the
    history's last op), in order."""
    out: list[StepWindow] = []
    open_: dict[str, tuple[float, bool, str | None, float | None]] = {}
    last = max((op.time for op in ops), default=0.0)
    for op in ops:
        if op.f != RUNBOOK_STEP or op.process != OBSERVER or not isinstance(op.value, dict):
            continue
        step = str(op.value.get("step", "?"))
        if op.value.get("state") == "begin":
            row, rto = op.value.get("row"), op.value.get("rto_s")
            open_[step] = (op.time, bool(op.value.get("guide", False)), row if isinstance(row, str) else None,
                           float(rto) if isinstance(rto, (int, float)) and not isinstance(rto, bool) else None)
        elif step in open_:
            begin, guide, row, rto = open_.pop(step)
            ok = op.value.get("ok")
            out.append(StepWindow(step, begin, op.time, guide, ok if isinstance(ok, bool) else None,
                                  op.value.get("error"), row, rto))
    out += [StepWindow(step, begin, last, guide, None, "the step never ended", row, rto)
            for step, (begin, guide, row, rto) in open_.items()]
    out.sort(key=lambda w: w.begin)
    return out


def during(windows: Sequence[StepWindow], t: float) -> StepWindow | None:
    """The step running at ``t`` (the latest begun), if any."""
    found = None
    for w in windows:
        if w.begin <= t <= w.end:
            found = w
    return found


def runbook_steps(
    ops: Sequence[Op],
    *,
    fs: Collection[str] = ("write", "read"),
    exclude_processes: Collection[int | str] = (FINAL_READER,),
) -> dict[str, Any]:
    """Per runbook step: its outcome, and the client failures invoked while it ran, with
    the unavailability they add up to per op kind (see the module doc). Informational:
    ``valid`` is True; the verdict judges the figures against the row."""
    ops = list(ops)
    windows = step_windows(ops)
    if not windows:
        return {"valid": True, "steps": []}
    invoked = pair_invocations(ops)
    failures: dict[int, list[tuple[Op, float]]] = {}
    oks: dict[str, list[float]] = {f: [] for f in fs}
    for i, op in enumerate(ops):
        if op.f not in fs or op.process in exclude_processes or op.process in (OBSERVER, "nemesis"):
            continue
        if op.type == "ok":
            oks[op.f].append(op.time)
        elif op.type in ("fail", "info"):
            at = invoked[i]
            start = ops[at].time if at is not None else op.time
            w = during(windows, start)
            if w is not None:
                failures.setdefault(windows.index(w), []).append((op, start))
    steps = []
    for pos, w in enumerate(windows):
        bad = failures.get(pos, [])
        entry: dict[str, Any] = {"step": w.step, "begin_s": round(w.begin, 3), "end_s": round(w.end, 3),
                                 "guide": w.guide, "ok": w.ok, "error": w.error, "failures": len(bad),
                                 "unavailable_s": {}}
        if w.row is not None and w.rto_s is not None:
            entry.update(row=w.row, rto_s=w.rto_s)
        if bad:
            entry["first_error"] = bad[0][0].error
            for f in fs:
                of_f = [(op, start) for op, start in bad if op.f == f]
                if not of_f:
                    continue
                first = min(start for _, start in of_f)
                last_bad = max(op.time for op, _ in of_f)
                after = next((t for t in oks[f] if t > last_bad), None)
                entry["unavailable_s"][f] = None if after is None else round(after - first, 3)
        steps.append(entry)
    return {"valid": True, "steps": steps}
