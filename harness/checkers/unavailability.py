"""When an op kind was unavailable, at probe resolution: the one definition the
RTO and availability checkers share.

For one ``f`` (``write``, ``read``), the client ops of the history (not the
nemesis's, not the observer's) give:

- **bad points**: each ``fail``/``info`` completion, and the invocation of
  each op that ended ``fail``/``info`` (it was under way from there);
- **silent gaps**: windows in which ops of ``f`` were in flight (invoked, not
  yet completed) and no op of ``f`` completed ``ok`` for longer than the gap
  threshold ``gap_s`` — whether or not an error was raised (a COMMIT queued in
  PgBouncer while no leader exists raises nothing). A gap runs from the last
  ``ok`` completion (or the start of the in-flight stretch) to the next one;
  an invoke its process abandoned (it invoked again) is in flight until
  ``f``'s last completion; an invoke **still open when the run ends** is in
  flight until the end: the load's stop (an observer ``load-stop`` op), else
  the final read's invocation (``read-all``), else the last op of the history.
  A COMMIT that hangs from a fault to the end is an outage to the end;
- **ok times**: the ``ok`` completions, which alone can make a stretch stable.

``gap_s`` = max(0.25 s, 5 × probe period). The probe period is the (low)
median interval between successive invocations of ``f`` by the same process,
or, when no process invoked ``f`` twice, between successive invocations of
``f`` by anyone; 0.04 s (the probe's default period) when neither exists.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import median_low
from typing import Final

from harness.history import LOAD_STOP, MONITOR, NEMESIS, OBSERVER, Op

READ_ALL: Final = "read-all"  # the final read: the run's traffic has ended when it starts
NON_CLIENT: Final = frozenset({NEMESIS, OBSERVER, MONITOR})
DEFAULT_PROBE_PERIOD_S: Final = 0.04
MIN_GAP_S: Final = 0.25
GAP_PERIODS: Final = 5


def gap_for(period_s: float) -> float:
    """The gap threshold for a probe period: max(0.25 s, 5 × period)."""
    return max(MIN_GAP_S, GAP_PERIODS * period_s)


@dataclass(slots=True)
class Outcomes:
    """What the history says about one ``f``; every list sorted by time."""

    f: str
    period_s: float
    gap_s: float
    ok_times: list[float] = field(default_factory=list)
    bad_done: list[float] = field(default_factory=list)  # fail/info completions
    bad_started: list[float] = field(default_factory=list)  # invocations of ops that failed
    gaps: list[tuple[float, float]] = field(default_factory=list)  # silent gaps (start, end)
    last_done: float | None = None  # last completion of f, any outcome
    last_ok_is_last: bool = False  # nothing but oks completed at f's last completion time
    seen: int = 0  # client ops of f (0: f is absent from the history)
    open_at_end: list[float] = field(default_factory=list)  # invocations never completed
    end: float | None = None  # where the run's traffic ended (see the module doc)

    def bad_intervals(self) -> list[tuple[float, float]]:
        """Every bad point (as a zero-length interval) and silent gap, sorted by start."""
        out = [(t, t) for t in self.bad_done]
        out += [(t, t) for t in self.bad_started]
        out += self.gaps
        out.sort()
        return out


class _Acc:
    __slots__ = ("oks", "bad_done", "bad_started", "flights", "pending", "periods", "any_periods",
                 "last_invoke", "last_any", "last_done", "last_bad_done", "seen", "open_at_end")

    def __init__(self) -> None:
        self.oks: list[float] = []
        self.bad_done: list[float] = []
        self.bad_started: list[float] = []
        self.flights: list[tuple[float, float]] = []
        self.pending: list[float] = []
        self.periods: list[float] = []
        self.any_periods: list[float] = []
        self.last_invoke: dict[int | str, float] = {}
        self.last_any: float | None = None
        self.last_done: float | None = None
        self.last_bad_done: float | None = None
        self.seen = 0
        self.open_at_end: list[float] = []


def _period(acc: _Acc) -> float:
    if acc.periods:
        return median_low(acc.periods)
    if acc.any_periods:
        return median_low(acc.any_periods)
    return DEFAULT_PROBE_PERIOD_S


def _silent_gaps(flights: list[tuple[float, float]], oks: list[float],
                 gap_s: float) -> list[tuple[float, float]]:
    """Pieces of the in-flight union, cut at ok completions, longer than ``gap_s``."""
    flights.sort()
    gaps: list[tuple[float, float]] = []

    def cut(seg_s: float, seg_e: float) -> None:
        if seg_e - seg_s <= gap_s:
            return
        i, j = bisect_right(oks, seg_s), bisect_left(oks, seg_e)
        prev = seg_s
        for k in range(i, j):
            if oks[k] - prev > gap_s:
                gaps.append((prev, oks[k]))
            prev = oks[k]
        if seg_e - prev > gap_s:
            gaps.append((prev, seg_e))

    seg_s = seg_e = None
    for s, e in flights:
        if seg_e is None or s > seg_e:
            if seg_e is not None:
                cut(seg_s, seg_e)  # type: ignore[arg-type]
            seg_s, seg_e = s, e
        elif e > seg_e:
            seg_e = e
    if seg_e is not None:
        cut(seg_s, seg_e)  # type: ignore[arg-type]
    return gaps


def _end_after(start: float, stops: list[float], history_end: float | None) -> float | None:
    """Where an invoke open at the end stops counting: the first load stop or final read
    after it, else the history's last op."""
    i = bisect_right(stops, start)
    return stops[i] if i < len(stops) else history_end


def outcomes(
    ops: Sequence[Op],
    fs: Iterable[str],
    *,
    gap_s: float | None = None,
    probe_period_s: float | None = None,
) -> dict[str, Outcomes]:
    """Per ``f`` in ``fs``: ok times, bad points and silent gaps (see the module doc).

    ``gap_s`` overrides the threshold; else ``probe_period_s`` sets it; else
    the period is derived from the history, per ``f``.
    """
    accs = {f: _Acc() for f in fs}
    open_: dict[int | str, tuple[str, float]] = {}
    history_end: float | None = None
    stops: list[float] = []  # load stops and final-read invocations, in order
    for op in ops:
        t = op.time
        if history_end is None or t > history_end:
            history_end = t
        if (op.f == LOAD_STOP and op.process == OBSERVER) or (op.f == READ_ALL and op.type == "invoke"):
            stops.append(t)
        acc = accs.get(op.f)
        if acc is None:
            continue
        p = op.process
        if p in NON_CLIENT:
            continue
        acc.seen += 1
        if op.type == "invoke":
            prev = open_.get(p)
            if prev is not None:  # an invoke that never completed
                accs[prev[0]].pending.append(prev[1])
            open_[p] = (op.f, t)
            last = acc.last_invoke.get(p)
            if last is not None and t >= last:
                acc.periods.append(t - last)
            acc.last_invoke[p] = t
            if acc.last_any is not None and t >= acc.last_any:
                acc.any_periods.append(t - acc.last_any)
            acc.last_any = t
            continue
        inv = open_.pop(p, None)
        start = t
        if inv is not None:
            if inv[0] == op.f:
                start = inv[1]
            else:
                accs[inv[0]].pending.append(inv[1])
        if start < t:
            acc.flights.append((start, t))
        if acc.last_done is None or t >= acc.last_done:
            acc.last_done = t
        if op.type == "ok":
            acc.oks.append(t)
        else:
            acc.bad_done.append(t)
            if acc.last_bad_done is None or t > acc.last_bad_done:
                acc.last_bad_done = t
            if start < t:
                acc.bad_started.append(start)
    for f, s in open_.values():
        accs[f].open_at_end.append(s)
    stops.sort()

    out: dict[str, Outcomes] = {}
    for f, acc in accs.items():
        if gap_s is not None:
            period, gap = (probe_period_s if probe_period_s is not None else gap_s / GAP_PERIODS), gap_s
        else:
            period = probe_period_s if probe_period_s is not None else _period(acc)
            gap = gap_for(period)
        acc.oks.sort()
        acc.bad_done.sort()
        acc.bad_started.sort()
        if acc.last_done is not None:
            acc.flights += [(s, acc.last_done) for s in acc.pending if s < acc.last_done]
        end = None
        for s in sorted(acc.open_at_end):
            end = _end_after(s, stops, history_end)
            if end is not None and s < end:
                acc.flights.append((s, end))
        o = Outcomes(f, period, gap, acc.oks, acc.bad_done, acc.bad_started,
                     _silent_gaps(acc.flights, acc.oks, gap), acc.last_done, seen=acc.seen,
                     open_at_end=sorted(acc.open_at_end), end=end)
        o.last_ok_is_last = bool(acc.oks) and acc.oks[-1] == acc.last_done and (
            acc.last_bad_done is None or acc.last_bad_done < acc.last_done)
        out[f] = o
    return out
