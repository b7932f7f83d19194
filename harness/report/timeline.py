"""timeline.png of a scenario: completions per second (ok / fail / info) over
time, one panel per op kind, with fault spans, RTO brackets and the target RTO;
alerts (firing -> resolved) in their own lane; the recovery timeline of each
fault (harness.checkers.phases: a bar per phase) in its own lane.

Binned with numpy (one pass over the history to parse it, none to draw), so a
history of a million ops renders in seconds. Uses matplotlib's object API on
the Agg canvas: no pyplot, no global backend switch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from harness.checkers.faults import faults as find_faults
from harness.checkers.phases import PHASE_FS, PHASES, SHORT
from harness.checkers.phases import collect as collect_phase_samples
from harness.checkers.phases import timelines as phase_timelines
from harness.history import MONITOR, NEMESIS, OBSERVER, HistoryFormatError, Op

try:
    from orjson import loads as _loads
except ImportError:  # orjson is an optional speed-up
    _loads = json.loads

MAIN_KINDS: Final = ("write", "read")
OUTCOMES: Final = ("ok", "fail", "info")
OUTCOME_COLORS: Final = {"ok": "#2da44e", "fail": "#cf222e", "info": "#f0a020"}
VERDICT_COLORS: Final = {"pass": "#1a7f37", "waived": "#9a6700", "fail": "#cf222e", "unknown": "#57606a"}
FAULT_COLORS: Final = ("#8250df", "#0969da", "#bf3989", "#1b7c83", "#953800")
BIN_WIDTHS: Final = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
MAX_BINS: Final = 160
FAULT_SPAN_GID: Final = "fault-span"
ALERT_SPAN_GID: Final = "alert-span"
SEVERITY_COLORS: Final = {"critical": "#cf222e", "warning": "#bf8700"}
STALL_GID: Final = "stall"
PHASE_BAR_GID: Final = "phase-bar"
PHASE_COLORS: Final = {"gone": "#57606a", "dcs": "#8250df", "promoted": "#0969da", "router": "#bf3989",
                       "pooler": "#1b7c83", "clients": "#2da44e"}
_TYPE_CODE: Final = {"ok": 0, "fail": 1, "info": 2}


@dataclass
class Timeline:
    """Completion times coded ``kind * 3 + outcome``, invoke times coded by kind, and the faults."""

    times: np.ndarray
    codes: np.ndarray
    kinds: list[str]
    invoked: np.ndarray = field(default_factory=lambda: np.zeros(0))
    invoked_kinds: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    nemesis: list[Op] = field(default_factory=list)
    end: float = 0.0
    monitor: list[Op] = field(default_factory=list)
    recorder: list[Op] = field(default_factory=list)  # the recovery-timeline samples (not drawn as rates)

    @classmethod
    def from_file(cls, path: str | Path) -> Timeline:
        """Parse a JSONL history, keeping only what the picture needs."""
        times: list[float] = []
        codes: list[int] = []
        inv_times: list[float] = []
        inv_codes: list[int] = []
        kind_code: dict[str, int] = {}
        nemesis: list[Op] = []
        monitor: list[Op] = []
        recorder: list[Op] = []
        last = 0.0
        loads, type_code = _loads, _TYPE_CODE
        with open(path, "rb") as fh:
            for n, raw in enumerate(fh, 1):
                try:
                    d = loads(raw)
                    t, typ, f, process = d["time"], d["type"], d["f"], d["process"]
                except (ValueError, TypeError, KeyError) as e:
                    if not raw.strip():
                        continue
                    raise HistoryFormatError(n, f"unreadable op ({type(e).__name__}: {e})", path) from None
                last = t
                if process in (NEMESIS, MONITOR):
                    (nemesis if process == NEMESIS else monitor).append(
                        Op(d.get("index", n), t, process, typ, f, d.get("value"), d.get("node")))
                    continue
                if process == OBSERVER and f in PHASE_FS:
                    recorder.append(Op(d.get("index", n), t, process, typ, f, d.get("value"), d.get("node")))
                    continue
                code = kind_code.get(f)
                if code is None:
                    code = kind_code[f] = len(kind_code)
                if typ == "invoke":
                    inv_times.append(t)
                    inv_codes.append(code)
                else:
                    times.append(t)
                    codes.append(code * 3 + type_code.get(typ, 2))
        return cls._build(times, codes, inv_times, inv_codes, kind_code, nemesis, last, monitor, recorder)

    @classmethod
    def from_ops(cls, ops: Sequence[Op]) -> Timeline:
        """The same, from ops already read (e.g. by ``read_history``)."""
        times: list[float] = []
        codes: list[int] = []
        inv_times: list[float] = []
        inv_codes: list[int] = []
        kind_code: dict[str, int] = {}
        nemesis: list[Op] = []
        monitor: list[Op] = []
        recorder: list[Op] = []
        for op in ops:
            if op.process in (NEMESIS, MONITOR):
                (nemesis if op.process == NEMESIS else monitor).append(op)
                continue
            if op.process == OBSERVER and op.f in PHASE_FS:
                recorder.append(op)
                continue
            code = kind_code.get(op.f)
            if code is None:
                code = kind_code[op.f] = len(kind_code)
            if op.type == "invoke":
                inv_times.append(op.time)
                inv_codes.append(code)
            else:
                times.append(op.time)
                codes.append(code * 3 + _TYPE_CODE.get(op.type, 2))
        last = ops[-1].time if ops else 0.0
        return cls._build(times, codes, inv_times, inv_codes, kind_code, nemesis, last, monitor, recorder)

    @classmethod
    def _build(cls, times: list[float], codes: list[int], inv_times: list[float], inv_codes: list[int],
               kind_code: dict[str, int], nemesis: list[Op], last: float,
               monitor: list[Op] | None = None, recorder: list[Op] | None = None) -> Timeline:
        t, inv = np.asarray(times, dtype=np.float64), np.asarray(inv_times, dtype=np.float64)
        tops = [float(a.max()) for a in (t, inv) if a.size]
        end = max([last, *tops] + [op.time for op in nemesis])
        return cls(t, np.asarray(codes, dtype=np.int64), list(kind_code), inv,
                   np.asarray(inv_codes, dtype=np.int64), nemesis, end, monitor or [], recorder or [])

    def alert_spans(self) -> list[dict[str, Any]]:
        """Each alert from firing to resolved (``stop`` None while still firing), in firing order."""
        spans: list[dict[str, Any]] = []
        open_: dict[str, dict[str, Any]] = {}
        expected = {str(n) for op in self.monitor if op.f == "expect-alerts" and isinstance(op.value, dict)
                    for n in op.value.get("alerts", [])}
        for op in self.monitor:
            v = op.value if isinstance(op.value, dict) else {}
            if op.f == "watch" and v.get("state") == "start":
                for a in v.get("firing", []):
                    span = {"alert": str(a.get("alert")), "severity": a.get("severity"), "start": op.time,
                            "stop": None, "expected": str(a.get("alert")) in expected, "before": True}
                    open_[str(a.get("fingerprint") or a.get("alert"))] = span
                    spans.append(span)
            if op.f != "alert":
                continue
            key = str(v.get("fingerprint") or v.get("alert"))
            if v.get("status") == "firing" and key not in open_:
                open_[key] = {"alert": str(v.get("alert")), "severity": v.get("severity"), "start": op.time,
                              "stop": None, "expected": str(v.get("alert")) in expected, "before": False}
                spans.append(open_[key])
            elif v.get("status") == "resolved" and key in open_:
                open_.pop(key)["stop"] = op.time
        return spans

    def recovery(self) -> list[dict[str, Any]]:
        """Each fault's recovery timeline (harness.checkers.phases), from the recorder's samples."""
        if not self.recorder:
            return []
        samples, _ = collect_phase_samples(self.recorder)
        oks: list[float] = []
        if "write" in self.kinds:
            oks = np.sort(self.times[self.codes == self.kinds.index("write") * 3]).tolist()
        found = find_faults(self.nemesis)
        result = phase_timelines(samples, oks, found, self.end)
        at = {f.index: f.time for f in found}
        return [{**f, "time": at[f["fault"]]} for f in result.get("faults", []) if f["phases"]]

    def rates(self, width: float, nbins: int) -> dict[str, np.ndarray]:
        """Completions per second of each kind: ``{kind: array (3 outcomes, nbins)}``."""
        nk = len(self.kinds)
        if nk == 0:
            return {}
        idx = np.clip((self.times / width).astype(np.int64), 0, nbins - 1)
        flat = np.bincount(self.codes * nbins + idx, minlength=nk * 3 * nbins)
        counts = flat.reshape(nk, 3, nbins) / width
        return {k: counts[i] for i, k in enumerate(self.kinds)}

    def in_flight(self, kinds: Sequence[str], at: np.ndarray) -> np.ndarray:
        """Ops of ``kinds`` invoked and not yet completed at each time of ``at``."""
        codes = [self.kinds.index(k) for k in kinds if k in self.kinds]
        inv = np.sort(self.invoked[np.isin(self.invoked_kinds, codes)])
        done = np.sort(self.times[np.isin(self.codes // 3, codes)])
        n = np.searchsorted(inv, at, side="right") - np.searchsorted(done, at, side="right")
        return np.maximum(n, 0)


def bin_width(duration_s: float, max_bins: int = MAX_BINS) -> float:
    """The smallest round bin width that keeps the picture under ``max_bins`` bars."""
    for w in BIN_WIDTHS:
        if duration_s / w <= max_bins:
            return w
    return math.ceil(duration_s / max_bins / 3600.0) * 3600.0


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f} s"


def _faults(timeline: Timeline, verdict: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The judged faults (with RTO) when a verdict is given, else those in the history."""
    if verdict and verdict.get("faults"):
        return list(verdict["faults"])
    return [{**f.to_dict(), "rto_s": {}, "unobserved": []} for f in find_faults(timeline.nemesis)]


def _waiver_bound(verdict: dict[str, Any] | None, fault: dict[str, Any]) -> float | None:
    bounds = [w["bound"] for w in (verdict or {}).get("waivers", [])
              if fault.get("f") in w.get("faults", ()) and w.get("metric") == "rto_s"]
    return max(bounds) if bounds else None


def _title(fig: Figure, scenario: str, verdict: dict[str, Any] | None, n_ops: int) -> None:
    v = None if verdict is None else str(verdict.get("verdict", "unknown"))
    fig.suptitle(f"{scenario} — {'not judged' if v is None else v.upper()}", x=0.01,
                 y=1 - 0.1 / fig.get_figheight(), ha="left", fontsize=15, fontweight="bold",
                 color=VERDICT_COLORS.get(v or "", "black"))
    if verdict is None:
        return
    target, rto, rpo = verdict.get("target") or {}, verdict.get("rto_s") or {}, verdict.get("rpo") or {}
    parts = []
    if target:
        parts.append(f"target {target.get('row')}: RTO {_fmt(target.get('rto_s'))}, "
                     f"RPO {_fmt(target.get('rpo_s'))}")
    else:
        parts.append("no target row")
    parts.append(f"measured RTO write {_fmt(rto.get('write'))}, read {_fmt(rto.get('read'))}")
    parts.append(f"acknowledged writes lost: {rpo.get('lost', '—')}")
    parts.append(f"{n_ops:,} completions")
    lines = ["   |   ".join(parts)]
    reasons = verdict.get("reasons") or []
    if v == "waived" and verdict.get("waivers"):
        w = verdict["waivers"][0]
        lines.append(f"waived up to {_fmt(w.get('bound'))}: {w.get('reason', '')}")
    elif reasons and v != "pass":
        lines.append(f"{len(reasons)} reason(s): {reasons[0]}")
    text = "\n".join(line if len(line) <= 175 else line[:172] + "..." for line in lines)
    fig.text(0.01, 1 - 0.5 / fig.get_figheight(), text, ha="left", va="top", fontsize=9, color="#24292f")


def _stack(ax: Any, edges: np.ndarray, rates: np.ndarray | None) -> float:
    """Stacked ok / fail / info stairs; returns the highest total."""
    if rates is None:
        ax.text(0.5, 0.5, "no completions", transform=ax.transAxes, ha="center", color="#57606a")
        return 0.0
    base = np.zeros(rates.shape[1])
    for i, outcome in enumerate(OUTCOMES):
        top = base + rates[i]
        if rates[i].any():
            ax.stairs(top, edges, baseline=base, fill=True, color=OUTCOME_COLORS[outcome], lw=0)
        base = top
    return float(base.max()) if base.size else 0.0


def _fault_spans(axes: Sequence[Any], faults: list[dict[str, Any]], end: float) -> None:
    top = axes[0]
    for i, fault in enumerate(faults):
        color = FAULT_COLORS[i % len(FAULT_COLORS)]
        start, healed = fault["time"], fault.get("healed_at")
        stop = healed if healed is not None else end
        for ax in axes:
            ax.axvspan(start, stop, color=color, alpha=0.10, lw=0, gid=FAULT_SPAN_GID, zorder=0.2)
            ax.axvline(start, color=color, lw=1.6)
            if healed is not None:
                ax.axvline(healed, color=color, lw=1.0, ls=(0, (1, 1)))
    _fault_labels(top, faults, end)


def _fault_labels(ax: Any, faults: list[dict[str, Any]], end: float) -> None:
    """Name each fault above the top panel, shortened where the next one is close."""
    char = _char_width(end) * 1.2  # bold 8.5 pt
    right = end * 1.01
    prev_end = -math.inf
    for i, fault in enumerate(faults):
        start, healed = fault["time"], fault.get("healed_at")
        name = f"{fault.get('f')} {fault.get('target') or '?'}"
        full = [f"{name}  @ {start:.1f} s", "never healed" if healed is None else f"healed @ {healed:.1f} s"]
        room = (faults[i + 1]["time"] if i + 1 < len(faults) else right) - start
        options = (full, [name], [str(fault.get("f"))])
        lines = next((o for o in options if max(map(len, o)) * char <= room), options[-1])
        ha = "left"
        if lines is not full and i + 1 == len(faults) and start - max(map(len, full)) * char >= prev_end:
            lines, ha = full, "right"  # the last fault, near the end: label to the left of its line
        ax.text(start, 1.02, "\n".join(lines), transform=ax.get_xaxis_transform(), ha=ha, va="bottom",
                fontsize=8.5, color=FAULT_COLORS[i % len(FAULT_COLORS)], fontweight="bold", clip_on=False)
        prev_end = start + (max(map(len, lines)) * char if ha == "left" else 0.0)


def _rto_color(rto: float, target_s: float | None, bound: float | None) -> str:
    if target_s is None or rto <= target_s:
        return VERDICT_COLORS["pass"]
    return VERDICT_COLORS["waived"] if bound is not None and rto <= bound else VERDICT_COLORS["fail"]


def _rto_marks(ax: Any, kind: str, faults: list[dict[str, Any]], verdict: dict[str, Any] | None,
               end: float) -> None:
    """Per fault: a bracket from the fault to recovery, the target RTO and any waiver bound."""
    target_s = ((verdict or {}).get("target") or {}).get("rto_s")
    trans = ax.get_xaxis_transform()
    for i, fault in enumerate(faults):
        t0, y = fault["time"], 0.86 - 0.16 * (i % 3)
        rto = (fault.get("rto_s") or {}).get(kind)
        bound = _waiver_bound(verdict, fault)
        if rto is None and kind in fault.get("unobserved", ()):
            late = t0 > 0.55 * end
            ax.text(t0, y, f"  {kind} RTO not measured (no {kind} completed after the fault)  ",
                    transform=trans, fontsize=9, va="center", ha="right" if late else "left",
                    color=VERDICT_COLORS["unknown"])
        elif rto is None and verdict is not None and kind in (fault.get("rto_s") or {}):
            ax.annotate("", xy=(end, y), xytext=(t0, y), xycoords=trans,
                        arrowprops={"arrowstyle": "->", "color": VERDICT_COLORS["fail"], "lw": 1.8})
            ax.text((t0 + end) / 2, y + 0.03, f"{kind}s never recovered", transform=trans,
                    ha="center", va="bottom", fontsize=10.5, fontweight="bold", color=VERDICT_COLORS["fail"])
        elif rto is not None:
            color = _rto_color(rto, target_s, bound)
            ax.annotate("", xy=(t0 + rto, y), xytext=(t0, y), xycoords=trans,
                        arrowprops={"arrowstyle": "|-|,widthA=0.4,widthB=0.4", "color": color,
                                    "lw": 1.8, "shrinkA": 0, "shrinkB": 0})
            ax.text(t0 + rto / 2, y + 0.03, f"{kind} RTO {rto:.1f} s", transform=trans, ha="center",
                    va="bottom", fontsize=11, fontweight="bold", color=color,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
        for limit, label, color, ls in ((target_s, "target", "#24292f", "--"),
                                        (bound, "waiver", VERDICT_COLORS["waived"], ":")):
            if limit is not None:
                ax.axvline(t0 + limit, color=color, lw=1.4, ls=ls)
                ax.text(t0 + limit, 0.99, f" {label} {limit:g} s", transform=trans, fontsize=8.5,
                        va="top", ha="left", color=color)


def _char_width(span_s: float) -> float:
    """About the width of one 8 pt character on the 13-inch time axis, in seconds."""
    return max(span_s, 1e-9) * 0.0055


def _stalls(ax: Any, timeline: Timeline, kinds: Sequence[str], edges: np.ndarray,
            rates: np.ndarray | None) -> int:
    """Hatch the stretches where ops were in flight and none completed (hung on a dead node)."""
    if not timeline.invoked.size:
        return 0
    n = timeline.in_flight(kinds, (edges[:-1] + edges[1:]) / 2)
    idle = rates.sum(axis=0) == 0 if rates is not None else np.ones(n.size, dtype=bool)
    hung = np.concatenate(([False], (n > 0) & idle, [False])).astype(np.int8)
    starts, stops = np.flatnonzero(np.diff(hung) == 1), np.flatnonzero(np.diff(hung) == -1)
    trans, char_s = ax.get_xaxis_transform(), _char_width(edges[-1])
    for i, j in zip(starts, stops, strict=True):
        if j - i < 2:
            continue
        x0, x1 = edges[i], edges[j]
        ax.fill_between([x0, x1], 0, 0.12, transform=trans, facecolor="none", edgecolor="#57606a",
                        hatch="////", lw=0.0, gid=STALL_GID)
        for label in (f"{int(n[i:j].max())} in flight, none completing ({x1 - x0:.1f} s)",
                      f"hung {x1 - x0:.1f} s"):
            if len(label) * char_s <= x1 - x0:
                ax.text((x0 + x1) / 2, 0.14, label, transform=trans, ha="center", va="bottom",
                        fontsize=8, color="#57606a")
                break
    return len(starts)


def _phases(ax: Any, phases: list[dict[str, Any]], end: float) -> None:
    """A thin strip of the scenario's phases, labelled where the label fits."""
    ax.set_yticks([])
    ax.set_ylim(0, 1)
    ax.set_ylabel("phase", rotation=0, ha="right", va="center", fontsize=9)
    char_s = _char_width(end)
    shown = [p for p in phases if p.get("phase") != "observed"]
    for i, p in enumerate(shown):
        start = float(p.get("time", 0.0))
        stop = float(shown[i + 1]["time"]) if i + 1 < len(shown) else end
        ax.axvspan(start, max(stop, start), color="#d0d7de" if i % 2 else "#eaeef2", lw=0)
        ax.axvline(start, color="#8c959f", lw=0.8)
        name = str(p.get("phase"))
        if name == "wait" and p.get("seconds") is not None:
            name = f"wait {p['seconds']:g} s"
        if (len(name) + 1) * char_s <= stop - start:
            ax.text(start, 0.5, f" {name}", fontsize=8, va="center", ha="left")
    labelled = -math.inf
    for p in phases:
        if p.get("phase") == "observed":
            ax.plot([p["time"]], [0.5], marker="v", color="#24292f", ms=6)
            if p["time"] - labelled > 10 * char_s:
                ax.text(p["time"], 0.5, "observed ", fontsize=8, va="center", ha="right")
                labelled = p["time"]


def _recovery_lane(ax: Any, recovery: list[dict[str, Any]], end: float) -> None:
    """After each fault, one bar per phase of its recovery (gone -> dcs -> promoted -> router ->
    pooler -> clients), one row per phase, labelled with its duration where it fits."""
    ax.set_ylim(len(PHASES) - 0.5, -0.5)
    ax.set_yticks(range(len(PHASES)), list(PHASES), fontsize=7.5)
    ax.text(0.003, 0.97, "recovery by phase", transform=ax.transAxes, fontsize=8, va="top", ha="left",
            color="#57606a")
    char_s = _char_width(end)
    for fault in recovery:
        t0 = float(fault["time"])
        for p in fault["phases"]:
            row = PHASES.index(p["phase"])
            stop = t0 + p["at_s"]
            start = stop - p["duration_s"]
            bar = ax.barh(row, max(p["duration_s"], end * 0.002), left=start, height=0.7,
                          color=PHASE_COLORS[p["phase"]], alpha=0.85, lw=0)
            for patch in bar:
                patch.set_gid(PHASE_BAR_GID)
            slowest = p["phase"] == fault.get("slowest")
            label = f" {p['duration_s']:.1f} s"
            if slowest:
                label += f" slowest ({SHORT[p['phase']]})"
                if stop + len(label) * char_s > end:
                    label = f" {p['duration_s']:.1f} s slowest"
            ax.text(stop, row, label, fontsize=7.5, va="center", ha="left",
                    fontweight="bold" if slowest else "normal")
    ax.grid(axis="x", color="#eaeef2", lw=0.8)


def _alerts_lane(ax: Any, spans: list[dict[str, Any]], end: float) -> None:
    """One row per alert name: firing -> resolved bars (red critical, amber warning),
    named at the row's left; expected alerts in bold; a bar still firing at the end
    is hatched to the edge."""
    names = list(dict.fromkeys(s["alert"] for s in spans))
    expected = {s["alert"] for s in spans if s["expected"]}
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_yticks([])
    ax.set_ylabel("alerts", rotation=0, ha="right", va="center", fontsize=9)
    for s in spans:
        row = names.index(s["alert"])
        stop = s["stop"] if s["stop"] is not None else end
        color = SEVERITY_COLORS.get(str(s["severity"]), "#57606a")
        bar = ax.barh(row, max(stop - s["start"], end * 0.002), left=s["start"], height=0.6, color=color,
                      alpha=0.8, hatch="////" if s["stop"] is None else None, edgecolor="white", lw=0)
        for patch in bar:
            patch.set_gid(ALERT_SPAN_GID)
    for row, name in enumerate(names):
        ax.text(0.003, row, name + (" (expected)" if name in expected else ""), transform=ax.get_yaxis_transform(),
                fontsize=8, va="center", ha="left", fontweight="bold" if name in expected else "normal",
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})
    ax.grid(axis="x", color="#eaeef2", lw=0.8)


def alert_span_count(fig: Figure) -> int:
    """How many alert bars a timeline figure draws."""
    return sum(1 for ax in fig.axes for p in ax.patches if p.get_gid() == ALERT_SPAN_GID)


def _legend(verdict: dict[str, Any] | None, faults: bool, stalled: int) -> list[Any]:
    """Legend entries for what the figure shows."""
    handles: list[Any] = [Patch(color=OUTCOME_COLORS[o], label=o) for o in OUTCOMES]
    if stalled:
        handles.append(Patch(facecolor="none", edgecolor="#57606a", hatch="////",
                             label="hung (in flight, none completing)"))
    if faults:
        handles.append(Patch(color=FAULT_COLORS[0], alpha=0.25, label="fault (inject → heal)"))
        handles.append(Line2D([], [], color="#24292f", marker="|", ms=8, lw=1.8, label="RTO"))
    if faults and ((verdict or {}).get("target") or {}).get("rto_s") is not None:
        handles.append(Line2D([], [], color="#24292f", ls="--", label="target RTO"))
    if faults and (verdict or {}).get("waivers"):
        handles.append(Line2D([], [], color=VERDICT_COLORS["waived"], ls=":", label="waiver bound"))
    return handles


def build_figure(timeline: Timeline, verdict: dict[str, Any] | None = None,
                 scenario: str | None = None) -> Figure:
    """The timeline figure (not saved); see :func:`render_timeline`."""
    phases = list((verdict or {}).get("phases") or [])
    end = max([timeline.end, 1e-3] + [float(p.get("time", 0.0)) for p in phases])
    width = bin_width(end)
    nbins = max(1, math.ceil(end / width))
    edges = np.arange(nbins + 1, dtype=np.float64) * width
    rates = timeline.rates(width, nbins)
    others = [k for k in timeline.kinds if k not in MAIN_KINDS]

    panels: list[tuple[list[str], np.ndarray | None]] = [([k], rates.get(k)) for k in MAIN_KINDS]
    ratios = [3.0, 3.0]
    if others:
        panels.append((others, np.sum([rates[k] for k in others], axis=0)))
        ratios.append(1.2)
    spans = timeline.alert_spans()
    if spans:
        ratios.append(0.35 + 0.28 * len({s["alert"] for s in spans}))
    recovery = timeline.recovery()
    if recovery:
        ratios.append(1.1)
    if phases:
        ratios.append(0.45)

    fig = Figure(figsize=(13, 2.0 + 0.95 * sum(ratios)), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(ratios), 1, sharex=True, gridspec_kw={"height_ratios": ratios, "hspace": 0.12})
    panel_axes = list(axes[: len(panels)])
    faults, stalled = _faults(timeline, verdict), 0
    for ax, (kinds, r) in zip(panel_axes, panels, strict=True):
        main = kinds[0] in MAIN_KINDS
        peak = _stack(ax, edges, r)
        ax.set_ylim(0, max(peak, 1.0) * (1.55 if main else 1.15))
        ax.set_ylabel(f"{kinds[0] if main else 'other'}\nops/s", fontsize=10)
        ax.grid(axis="y", color="#eaeef2", lw=0.8)
        ax.set_axisbelow(True)
        stalled += _stalls(ax, timeline, kinds, edges, r)
        if main:
            _rto_marks(ax, kinds[0], faults, verdict, end)
        else:
            ax.text(0.005, 0.95, ", ".join(kinds), transform=ax.transAxes, fontsize=8.5, va="top",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
    if spans:
        _alerts_lane(axes[len(panels)], spans, end)
    if recovery:
        _recovery_lane(axes[len(panels) + bool(spans)], recovery, end)
    _fault_spans(panel_axes + list(axes[len(panels):len(panels) + bool(spans) + bool(recovery)]), faults, end)
    if phases:
        _phases(axes[-1], phases, end)
    axes[-1].set_xlim(0, end * 1.01)
    axes[-1].set_xlabel(f"seconds since run start (completions binned per {width:g} s)")

    _title(fig, scenario or str((verdict or {}).get("scenario") or "scenario"), verdict,
           int(timeline.times.size))
    handles = _legend(verdict, bool(faults), stalled)
    if spans:
        handles.append(Patch(color=SEVERITY_COLORS["critical"], alpha=0.8,
                             label="alert firing (amber: warning)"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    height = fig.get_figheight()  # header and footer in inches, whatever the panels
    fig.subplots_adjust(left=0.075, right=0.99, top=1 - 1.45 / height, bottom=0.95 / height)
    return fig


def fault_span_count(fig: Figure) -> int:
    """How many fault spans the top panel of a timeline figure shades."""
    return sum(1 for p in fig.axes[0].patches if p.get_gid() == FAULT_SPAN_GID)


def render_timeline(history_path: str | Path, verdict: dict[str, Any] | None, out_png: Path,
                    *, ops: Sequence[Op] | None = None) -> Path:
    """Draw the timeline of ``history_path`` (or of ``ops`` already read) into ``out_png``."""
    timeline = Timeline.from_ops(ops) if ops is not None else Timeline.from_file(history_path)
    scenario = (verdict or {}).get("scenario") or Path(history_path).parent.name
    fig = build_figure(timeline, verdict, scenario)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, format="png")
    return out_png
