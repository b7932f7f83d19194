"""The trend page: each scenario's write RTO (and time-to-detect) across runs.

``pgchaos report --trend [DIR]`` finds every run under DIR (a folder holding
summary.json, at any depth up to four: certify and gate folders nest their
runs), orders them by the run's time (its folder name, else the summary's
modification time) and draws one small inline-SVG chart per scenario: a
point per sample, the target as a dashed line, failures marked, and a
vertical mark wherever the stack's config changed (variant or config hash
from run-info.json). Written as DIR/trend.html; no script, no external asset.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from harness.report.page import COLORS, CSS, PAGE, badge, esc, fmt_s, overall
from harness.report.run_info import read_run_info
from harness.report.summary import SAMPLE

TREND: Final = "trend.html"
STAMP: Final = re.compile(r"(\d{8}-\d{6})")
MAX_DEPTH: Final = 4
W, H, PAD_L, PAD_B, PAD_T = 360, 150, 38, 22, 14
FAILING: Final = frozenset({"fail", "error", "unknown"})


@dataclass
class Run:
    """One run folder: when, its config, its summary rows."""

    path: Path
    when: str
    rows: list[dict[str, Any]]
    variant: str | None = None
    config_hash: str | None = None
    manifest: str | None = None

    @property
    def config(self) -> tuple[str | None, str | None] | None:
        """(variant, config hash); None when the run recorded neither."""
        return None if self.config_hash is None and self.variant is None else (self.variant, self.config_hash)


@dataclass
class Series:
    """One scenario's points: (run position, write RTO, time-to-detect, verdict, target)."""

    name: str
    points: list[tuple[int, float | None, float | None, str, float | None]] = field(default_factory=list)


def _when(path: Path, summary: Path) -> str:
    m = STAMP.search(path.name)
    if m:
        return m.group(1)
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(summary.stat().st_mtime))


def find_runs(root: Path) -> list[Run]:
    """Every run under ``root`` (``root`` itself included), oldest first."""
    root = Path(root)
    found: list[Run] = []
    for summary in sorted(root.glob("summary.json")) + sorted(
            p for depth in range(1, MAX_DEPTH + 1) for p in root.glob("/".join(["*"] * depth) + "/summary.json")):
        try:
            rows = json.loads(summary.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(rows, list):
            continue
        run_dir = summary.parent
        stack = read_run_info(run_dir).get("stack") or {}
        found.append(Run(run_dir, _when(run_dir, summary), [r for r in rows if isinstance(r, dict)],
                         stack.get("variant"), stack.get("config_hash"), stack.get("manifest")))
    found.sort(key=lambda r: (r.when, str(r.path)))
    return found


def series(runs: list[Run]) -> dict[str, Series]:
    """Per scenario (samples grouped), its points across ``runs``."""
    out: dict[str, Series] = {}
    for i, run in enumerate(runs):
        for r in run.rows:
            name = SAMPLE.sub("", str(r.get("scenario") or "?"))
            out.setdefault(name, Series(name)).points.append(
                (i, r.get("rto_write_s"), r.get("detect_s"), str(r.get("verdict")), r.get("target_rto_s")))
    return dict(sorted(out.items()))


def config_changes(runs: list[Run]) -> list[tuple[int, str]]:
    """(position, what changed) wherever a run's config differs from the last run that recorded one."""
    changes, last = [], None
    for i, run in enumerate(runs):
        cfg = run.config
        if cfg is None:
            continue
        if last is not None and cfg != last:
            what = []
            if cfg[0] != last[0]:
                what.append(f"variant {last[0] or 'reference'} → {cfg[0] or 'reference'}")
            if cfg[1] != last[1]:
                what.append(f"config {last[1] or '?'} → {cfg[1] or '?'}")
            changes.append((i, "; ".join(what)))
        last = cfg
    return changes


def chart(s: Series, n_runs: int, changes: list[tuple[int, str]], runs: list[Run]) -> str:
    """One small multiple: write RTO (filled dots, line), time-to-detect (hollow), target (dashed)."""
    values = [v for p in s.points for v in (p[1], p[2], p[4]) if v is not None]
    top = max(values) * 1.15 if values else 1.0
    def x(i: int) -> float:
        return PAD_L + (W - PAD_L - 10) * ((i + 0.5) / max(1, n_runs))
    def y(v: float) -> float:
        return PAD_T + (H - PAD_T - PAD_B) * (1 - v / top)
    out = [f'<svg class="trend" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" '
           f'aria-label="{esc(s.name)}">',
           f'<rect x="{PAD_L}" y="{PAD_T}" width="{W - PAD_L - 10}" height="{H - PAD_T - PAD_B}" fill="#f6f8fa"/>']
    for frac in (0.0, 0.5, 1.0):
        v = top / 1.15 * frac
        label = f"{v:.0f}" if top >= 20 else f"{v:.1f}" if top >= 2 else f"{v:.2f}"
        out.append(f'<text x="{PAD_L - 4}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#57606a">{label}</text>')
    for i, what in changes:
        xi = x(i) - (W - PAD_L - 10) / max(1, n_runs) / 2
        out.append(f'<line class="config-change" x1="{xi:.1f}" x2="{xi:.1f}" y1="{PAD_T}" y2="{H - PAD_B}" '
                   f'stroke="#bf8700" stroke-width="1.5" stroke-dasharray="4,3"><title>{esc(what)}</title></line>')
    targets = sorted({p[4] for p in s.points if p[4] is not None})
    for t in targets:
        out.append(f'<line x1="{PAD_L}" x2="{W - 10}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#1f2328" '
                   f'stroke-dasharray="5,3"><title>target {fmt_s(t)}</title></line>'
                   f'<text x="{W - 12}" y="{y(t) - 3:.1f}" text-anchor="end">target {fmt_s(t)}</text>')
    for idx, color in ((2, "#8250df"), (1, "#1f2328")):
        pts = [(p[0], p[idx]) for p in s.points if p[idx] is not None]
        if len(pts) > 1:
            path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1" '
                       'stroke-opacity="0.5"/>')
    for i, rto, det, word, _ in s.points:
        run = runs[i].path.name
        if det is not None:
            out.append(f'<circle cx="{x(i):.1f}" cy="{y(det):.1f}" r="3" fill="#fff" stroke="#8250df">'
                       f'<title>{esc(run)}: time-to-detect {fmt_s(det)}</title></circle>')
        color = COLORS.get(word, "#6e7781")
        tip = f"{esc(run)}: {esc(word)}, write RTO {fmt_s(rto)}"
        if rto is None:
            if word in FAILING:  # failed without a measured RTO: a cross on the axis
                yy = H - PAD_B - 4
                out.append(f'<path class="failure" d="M{x(i) - 4:.1f},{yy - 4} l8,8 m0,-8 l-8,8" stroke="{color}" '
                           f'stroke-width="2"><title>{tip}</title></path>')
            continue
        cls = ' class="failure"' if word in FAILING else ""
        r = 5 if word in FAILING else 3.5
        out.append(f'<circle{cls} cx="{x(i):.1f}" cy="{y(rto):.1f}" r="{r}" fill="{color}"><title>{tip}</title>'
                   "</circle>")
    out.append(f'<text x="{PAD_L}" y="{H - 6}" fill="#57606a">run 1</text>'
               f'<text x="{W - 10}" y="{H - 6}" text-anchor="end" fill="#57606a">run {n_runs}</text></svg>')
    return "".join(out)


def _runs_table(root: Path, runs: list[Run], changes: dict[int, str]) -> str:
    body = []
    for i, run in enumerate(runs):
        words = [str(r.get("verdict")) for r in run.rows]
        page = run.path / PAGE
        rel = quote(str(run.path.relative_to(root)) if run.path != root else ".")
        name = (f'<a href="{rel}/{PAGE}">{esc(run.path.name)}</a>' if page.is_file() else esc(run.path.name))
        body.append(f"<tr><td class=num>{i + 1}</td><td>{name}</td><td>{esc(run.when)}</td>"
                    f"<td>{badge(overall(words))}</td><td class=num>{sum(w != 'skipped' for w in words)}</td>"
                    f"<td>{esc(run.variant or ('reference' if run.config else '—'))}</td>"
                    f"<td>{esc(run.config_hash or '—')}</td><td>{esc(changes.get(i, ''))}</td></tr>")
    return ("<table class=verdicts><thead><tr><th>#</th><th>run</th><th>time</th><th>verdict</th><th>executed</th>"
            "<th>variant</th><th>config hash</th><th>config change</th></tr></thead><tbody>"
            + "".join(body) + "</tbody></table>")


def render_trend(root: Path) -> str:
    """The trend page of every run under ``root`` as one HTML string."""
    root = Path(root)
    runs = find_runs(root)
    all_series = series(runs)
    changes = config_changes(runs)
    drawn = sorted((s for s in all_series.values() if any(p[1] is not None or p[3] in FAILING for p in s.points)),
                   key=lambda s: (not any(p[3] in FAILING for p in s.points),
                                  all(p[4] is None for p in s.points), s.name))
    nothing = [s.name for s in all_series.values() if s not in drawn]
    charts = "".join(
        f'<figure class="multiple" data-scenario="{esc(s.name)}"><figcaption>{esc(s.name)} '
        f'<span class="muted">({sum(p[3] in FAILING for p in s.points)} failing of {len(s.points)})</span>'
        f"</figcaption>{chart(s, len(runs), changes, runs)}</figure>"
        for s in drawn)
    span = f"{runs[0].when} … {runs[-1].when}" if runs else "no run found"
    css = CSS + (".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(370px,1fr));gap:10px}"
                 "figure.multiple{background:#fff;border:1px solid #d0d7de;border-radius:8px;margin:0;"
                 "padding:6px 6px 2px}figcaption{font-weight:600;font-size:13px;margin:0 0 2px 4px}")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>pgchaos trends — {esc(root.name)}</title><style>{css}</style></head><body><main>"
        f"<header><h1>pgchaos trends — {esc(root.resolve().name)}</h1><div class=meta>"
        f"<span>runs</span><span><b>{len(runs)}</b> ({esc(span)}), in run order</span>"
        f"<span>scenarios</span><span>{len(all_series)}</span>"
        f"<span>config changes</span><span>{len(changes)}"
        + "".join(f"<br>before run {i + 1} ({esc(runs[i].path.name)}): {esc(what)}" for i, what in changes)
        + "</span>"
        f"<span>written</span><span>{esc(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()))}</span></div>"
        "</header><p class=muted>Per scenario, one point per sample: ● write RTO coloured by verdict "
        "(large: failing; × a failure with no RTO), ○ time-to-detect, dashed: the target, "
        "<span style='color:#bf8700'>┆</span> a config change (variant or config hash). Hover a point for "
        "its run.</p>"
        f'<div class="grid">{charts or "<p class=muted>no scenario found</p>"}</div>'
        + (f"<p class=muted>No RTO measured and no failure in any run (skipped, or no fault): "
           f"{esc(', '.join(nothing))}</p>" if nothing else "")
        + f"<h2 style='margin:18px 0 8px'>Runs</h2>{_runs_table(root, runs, dict(changes))}"
        "</main></body></html>\n")


def write_trend(root: Path, out: Path | None = None) -> Path:
    """Write the trend page (default ``root/trend.html``); returns its path."""
    path = Path(out) if out is not None else Path(root) / TREND
    path.write_text(render_trend(Path(root)), encoding="utf-8")
    return path
