"""The certification page: one self-contained HTML file per run.

``reports/<run>/certification.html`` is built from what the run wrote
(summary.json, each scenario's verdict.json, timeline.png, run-info.json):
a header (stack, machine, config revision, counts, the overall verdict), the
verdict table (one row per scenario, its write RTO as a bar against the
target with the waiver bound marked), then per scenario the details: RTO and
RPO bars, recovery phases, alerts with time-to-detect, the fault's evidence,
findings, the timeline picture and relative links to the raw files. Pictures
are inlined as data URIs; no script, no external asset.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from harness.checkers.phases import PHASES, SHORT
from harness.report.run_info import read_run_info
from harness.report.summary import counts, summary_row
from harness.verdict import DEFAULT_MARGIN, VERDICTS

PAGE: Final = "certification.html"
FAILING: Final = ("error", "fail", "unknown")
TABLE_ORDER: Final = ("error", "fail", "unknown", "marginal", "waived", "pass", "unjudged", "skipped")
# worst first: the run's overall verdict is the worst of its executed scenarios
WORST_FIRST: Final = ("error", "fail", "unknown", "unjudged", "waived", "marginal", "pass")
COLORS: Final = {"pass": "#1a7f37", "marginal": "#b76e00", "waived": "#0969da", "unjudged": "#6e7781",
                 "unknown": "#8250df", "fail": "#cf222e", "error": "#82071e", "skipped": "#8c959f"}
PHASE_COLORS: Final = {"gone": "#8c959f", "dcs": "#bf8700", "promoted": "#1a7f37", "router": "#0969da",
                       "pooler": "#8250df", "clients": "#cf222e"}
RAW_FILES: Final = ("history.jsonl", "verdict.json", "verdict.rebuilt.json", "timeline.png",
                    "patronictl-before.txt", "patronictl-after.txt", "steady-state-before.json",
                    "steady-state-after.json", "locust.html", "locust_stats.csv", "locust.log")
RUN_FILES: Final = ("summary.md", "summary.json", "junit.xml", "run-info.json", "allure-report/index.html")
BAR_W: Final = 210
WHY_CHARS: Final = 110  # a reason in the verdict table is cut here (whole in the details and on hover)
CSS: Final = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
main{max-width:1240px;margin:0 auto;padding:16px 24px 48px}
header{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:14px 18px;margin:12px 0}
h1{font-size:20px;margin:0 0 6px}h2{font-size:17px;margin:0}h3{font-size:14px;margin:14px 0 4px;color:#57606a}
.overall{float:right;font-size:18px;padding:6px 14px}
.headline{font-size:16px;font-weight:600;margin:2px 0 8px}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;color:#424a53;margin-top:6px}
.meta b{color:#1f2328;font-weight:600}
.badge{display:inline-block;color:#fff;border-radius:12px;padding:1px 9px;font-weight:600;font-size:12px}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{border-bottom:1px solid #d8dee4;padding:5px 8px;text-align:left;vertical-align:middle}
th{background:#eaeef2;font-weight:600;font-size:12px;color:#424a53}
table.verdicts{border:1px solid #d0d7de;border-radius:8px}
td.scn{overflow-wrap:anywhere;min-width:180px}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.why{color:#57606a;font-size:12px;max-width:380px}
section.scenario{background:#fff;border:1px solid #d0d7de;border-left-width:6px;border-radius:8px;
padding:12px 18px;margin:16px 0}
section.scenario table{width:auto}section.scenario td,section.scenario th{font-size:13px}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:4px 28px}
img.timeline{max-width:min(100%,960px);border:1px solid #d8dee4;margin-top:8px}
ul.findings{margin:4px 0;padding-left:18px}ul.findings li{margin:2px 0}
.sev{font-size:11px;font-weight:600;text-transform:uppercase;margin-right:4px}
.links a{margin-right:10px}.muted{color:#6e7781}
svg text{font:11px system-ui,sans-serif}
a{color:#0969da}
"""


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def fmt_s(x: Any) -> str:
    if x is None:
        return "—"
    x = float(x)
    return f"{x:.0f} s" if x >= 100 else f"{x:.1f} s"


def badge(word: str | None) -> str:
    w = word or "unknown"
    return f'<span class="badge" style="background:{COLORS.get(w, "#6e7781")}">{esc(w)}</span>'


def overall(words: Iterable[str | None]) -> str:
    """The worst verdict of the executed scenarios; "nothing certified" when none ran."""
    ran = [w for w in words if w != "skipped"]
    if not ran:
        return "nothing certified"
    return min(ran, key=lambda w: WORST_FIRST.index(w) if w in WORST_FIRST else -1) or "unknown"


def data_uri(path: Path) -> str | None:
    """``path`` as a data URI (PNG), None when it is missing or not a PNG."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if not raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    return "data:image/png;base64," + base64.b64encode(raw).decode()


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


@functools.cache
def table_waivers(row: str) -> tuple[Any, ...]:
    """The waivers of ``row`` in the shipped targets table (none when it cannot be read)."""
    try:
        from harness.targets import load_targets

        return tuple(load_targets().waivers_for(row))
    except Exception:  # a report never fails on the targets table
        return ()


def waiver_bound(verdict: dict[str, Any], kind: str = "write") -> float | None:
    """The waiver bound that applies to this scenario's faults: the one it was judged against,
    else one the run derived or the table holds for its row and faults."""
    for m in verdict.get("margins") or []:
        if m.get("kind") == kind and m.get("against") == "waiver":
            return m.get("bound_s")
    faults = {f.get("f") for f in verdict.get("faults") or []}
    row = (verdict.get("target") or {}).get("row")
    bounds = [w.get("bound") for w in [*(verdict.get("waivers") or []), *(verdict.get("derived_bounds") or [])]
              if (w.get("row") in (None, row)) and faults & set(w.get("faults") or [])]
    if not bounds and row:
        bounds = [w.bound for w in table_waivers(row) if w.metric == "rto_s" and faults & set(w.faults)]
    bounds = [b for b in bounds if isinstance(b, int | float)]
    return max(bounds) if bounds else None


def bar_color(measured: float, bound: float | None, waiver: float | None,
              margin: float = DEFAULT_MARGIN) -> str:
    """The measured figure against its bounds: within the target (amber within the margin of it),
    within the waiver, past both; grey without a bound."""
    if bound is None:
        return COLORS["unjudged"]
    if measured <= bound:
        return COLORS["marginal"] if bound > 0 and measured / bound > 1.0 - margin else COLORS["pass"]
    if waiver is not None and measured <= waiver:
        return COLORS["waived"]
    return COLORS["fail"]


def bar(measured: float | None, bound: float | None, waiver: float | None,
        width: int = BAR_W, label: str = "") -> str:
    """An inline SVG bar: ``measured`` against ``bound`` (solid mark) and ``waiver`` (dashed mark)."""
    h = 30
    if measured is None:
        return f'<span class="muted">{esc(label or "—")}</span>'
    top = max(v for v in (measured, bound or 0, waiver or 0, 1e-9) if v is not None) * 1.12
    def x(v: float) -> float:
        return round(4 + (width - 8) * v / top, 1)
    color = bar_color(measured, bound, waiver)
    parts = [f'<svg width="{width}" height="{h}" viewBox="0 0 {width} {h}" role="img" '
             f'aria-label="{esc(label)} {measured:.1f} s of {esc(fmt_s(bound))}">',
             f'<rect x="4" y="6" width="{width - 8}" height="12" fill="#eaeef2" rx="2"/>',
             f'<rect x="4" y="6" width="{max(1.0, x(measured) - 4)}" height="12" fill="{color}" rx="2"/>']
    if bound is not None:
        parts.append(f'<line x1="{x(bound)}" x2="{x(bound)}" y1="2" y2="22" stroke="#1f2328" stroke-width="2"/>'
                     f'<text x="{x(bound)}" y="29" text-anchor="middle">{esc(fmt_s(bound))}</text>')
    if waiver is not None:
        parts.append(f'<line x1="{x(waiver)}" x2="{x(waiver)}" y1="2" y2="22" stroke="#0969da" '
                     f'stroke-width="2" stroke-dasharray="3,2"/><text x="{min(x(waiver), width - 30)}" '
                     f'y="29" text-anchor="middle" fill="#0969da">waiver {esc(fmt_s(waiver))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def phases_svg(fault: dict[str, Any], rto: float | None, width: int = 720) -> str:
    """The recovery phases of one fault on one axis from the fault (0 s): one segment per phase."""
    rows = [p for p in fault.get("phases") or [] if p.get("at_s") is not None]
    if not rows:
        return ""
    end = max([float(p["at_s"]) for p in rows] + [rto or 0.0]) * 1.08 or 1.0
    def x(v: float) -> float:
        return round(8 + (width - 16) * v / end, 1)
    out = [f'<rect x="8" y="14" width="{width - 16}" height="14" fill="#f6f8fa"/>']
    order = {name: i for i, name in enumerate(PHASES)}
    lanes: list[float] = []  # the right end of the last label in each lane of labels
    for p in sorted(rows, key=lambda p: order.get(str(p.get("phase")), len(order))):
        at, took = float(p["at_s"]), float(p.get("duration_s") or 0.0)
        name = str(p.get("phase"))
        color = PHASE_COLORS.get(name, "#6e7781")
        out.append(f'<rect x="{x(at - took)}" y="14" width="{max(1.5, x(at) - x(at - took))}" height="14" '
                   f'fill="{color}"><title>{esc(name)}: {at:.2f} s after the fault ({took:.2f} s)</title></rect>')
        text = f"{name} {at:.1f}"
        half = 3.2 * len(text)
        left = min(max(x(at) - half, 0.0), width - 2 * half)
        lane = next((i for i, end in enumerate(lanes) if left > end + 4), len(lanes))
        lanes[lane:lane + 1] = [left + 2 * half]
        y = 42 + 12 * lane
        out.append(f'<line x1="{x(at)}" x2="{x(at)}" y1="12" y2="{y - 9}" stroke="{color}"/>'
                   f'<text x="{left + half:.1f}" y="{y}" text-anchor="middle" fill="{color}">{esc(text)}</text>')
    height = 36 + 12 * max(1, len(lanes))
    out.insert(0, f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
                  'aria-label="recovery phases">')
    if rto is not None:
        anchor = "end" if x(rto) > width - 40 else "middle"
        out.append(f'<line x1="{x(rto)}" x2="{x(rto)}" y1="4" y2="30" stroke="#1f2328" stroke-width="2" '
                   f'stroke-dasharray="2,2"/><text x="{x(rto)}" y="10" text-anchor="{anchor}">'
                   f"RTO {rto:.1f}</text>")
    out.append("</svg>")
    return "".join(out)


def _scenario_dir(run_dir: Path, row: dict[str, Any]) -> Path:
    return run_dir / str(row.get("scenario"))


def load_run(run_dir: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(summary row, verdict document) per scenario, in the summary's order; without a
    summary.json, from the scenario folders' verdicts."""
    rows: list[dict[str, Any]] = []
    try:
        loaded = json.loads((run_dir / "summary.json").read_text())
        rows = [r for r in loaded if isinstance(r, dict)] if isinstance(loaded, list) else []
    except (OSError, ValueError):
        rows = []
    if not rows:
        dirs = sorted(p for p in run_dir.iterdir() if p.is_dir() and (p / "verdict.json").is_file())
        rows = [summary_row({"scenario": d.name, **_load(d / "verdict.json")}) for d in dirs]
    out = []
    for r in rows:
        d = _scenario_dir(run_dir, r)
        rebuilt = d / "verdict.rebuilt.json"
        doc = _load(rebuilt) if r.get("rebuilt") and rebuilt.is_file() else _load(d / "verdict.json")
        out.append((r, doc))
    return out


def ordered(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Failing first, then the judged ones worst first, then unjudged and skipped; in run order
    within a verdict."""
    rank = {w: i for i, w in enumerate(TABLE_ORDER)}
    return sorted(pairs, key=lambda p: rank.get(str(p[0].get("verdict")), -1))


def headline(rows: list[dict[str, Any]]) -> str:
    """The run in one sentence: certified or not, and why."""
    ran = [r for r in rows if r.get("verdict") != "skipped"]
    failing = [r for r in ran if r.get("verdict") in FAILING]
    unjudged = sum(r.get("verdict") == "unjudged" for r in ran)
    skipped = len(rows) - len(ran)
    if not ran:
        return "Nothing was certified: no scenario ran."
    judged = len(ran) - unjudged
    if failing:
        text = f"Not certified: {len(failing)} of {len(ran)} executed scenarios failing."
    elif unjudged:
        text = f"All {judged} judged scenarios met their targets."
    else:
        text = f"Certified: all {judged} executed scenarios met their targets."
    if unjudged:
        text += f" {unjudged} measured without a target (unjudged)."
    if skipped:
        text += f" {skipped} skipped."
    return text


def _header(run_dir: Path, info: dict[str, Any], rows: list[dict[str, Any]], word: str) -> str:
    tally = counts(rows)
    stack, host = info.get("stack") or {}, info.get("machine") or {}
    git = stack.get("git") or {}
    mem = host.get("memory_bytes")
    words = ", ".join(f'{n} {badge(w)}' for w, n in tally["verdicts"].items() if w != "skipped")
    meta = [
        ("stack", " · ".join(esc(x) for x in (
            f"manifest {stack.get('manifest') or '—'}", f"profile {stack.get('profile') or '—'}",
            f"engine {stack.get('engine') or '—'}", f"variant {stack.get('variant') or 'reference'}")
            ) + (" · attached" if stack.get("attached") else "") if stack else
            '<span class="muted">not recorded by this run</span>'),
        ("config", esc(f"hash {stack.get('config_hash') or '—'}") + (
            esc(f" · git {git.get('commit')}" + (f", config last changed in {git['config_commit']}"
                                                 if git.get("config_commit") else "")
                + (" (uncommitted changes)" if git.get("dirty") else ""))
            if git else " · not in git") if stack else '<span class="muted">—</span>'),
        ("machine", esc(" · ".join(str(x) for x in (
            host.get("hostname"), f"{host.get('cores')} cores" if host.get("cores") else None,
            f"{mem / 2**30:.1f} GiB" if mem else None, f"Linux {host['kernel']}" if host.get("kernel") else None)
            if x)) if host else '<span class="muted">not recorded by this run</span>'),
        *([("stacks", esc(f"{stacks.get('count')} identical stacks at once, the scenarios split between "
                             "them (their runs: " + ", ".join(map(str, stacks.get("runs") or [])) + ")"))]
          if isinstance(stacks := info.get("stacks"), dict) else []),
        ("scenarios", f"<b>{tally['executed']} executed, {tally['skipped']} skipped, {tally['errored']} "
                      f"errored</b>" + (f" — {words}" if words else "")),
        ("failing", ", ".join(f'<a href="#{_anchor(r.get("scenario"))}">{esc(r.get("scenario"))}</a> '
                              f'{badge(r.get("verdict"))}' for r in rows if r.get("verdict") in FAILING)
         or "none"),
        ("files", " ".join(f'<a href="{quote(n)}">{esc(n.removesuffix("/index.html"))}</a>'
                           for n in RUN_FILES if (run_dir / n).is_file()) or '<span class="muted">—</span>'),
        ("written", esc(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))),
    ]
    color = COLORS.get(word, COLORS["fail"])
    return (f'<header><span class="badge overall" style="background:{color}">{esc(word)}</span>'
            f'<h1>pgchaos certification — run {esc(run_dir.name)}</h1>'
            f'<p class="headline" style="color:{color}">{esc(headline(rows))}</p><div class="meta">'
            + "".join(f"<span>{k}</span><span>{v}</span>" for k, v in meta) + "</div></header>")


def _anchor(name: Any) -> str:
    return "s-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in str(name))


def margin_text(m: dict[str, Any] | None, rto: float | None, target: float | None) -> str:
    """The closest RTO against its bound; past the target without a waiver (the verdict records
    no margin then), the write RTO against the target."""
    if m:
        return f"{m['ratio']:.0%} of {m['bound_s']:g} s" + (
            "" if m.get("against") == "target" else f" ({esc(m.get('against'))})")
    if rto is not None and target:
        return f"<b>{rto / target:.0%}</b> of {target:g} s"
    return "—"


def _verdict_table(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    head = ("<tr><th>scenario</th><th>verdict</th><th>target row</th><th>write RTO vs target</th>"
            "<th>RTO</th><th>margin</th><th>lost</th><th>detect</th>"
            "<th>wall</th></tr>")
    body = []
    for r, v in pairs:
        word = r.get("verdict")
        m = r.get("margin")
        margin = margin_text(m, r.get("rto_write_s"), r.get("target_rto_s"))
        # "no target row" says again what the target column shows
        why = "" if word == "pass" or r.get("codes") == ["no-target"] else str(r.get("reason") or "")
        short = why if len(why) <= WHY_CHARS else why[:WHY_CHARS].rsplit(" ", 1)[0] + " …"
        if r.get("target_rto_s") is None:  # nothing to measure against: no bar
            rto_bar = f'<span class="muted">{"skipped" if word == "skipped" else "no target"}</span>'
        else:
            rto_bar = bar(r.get("rto_write_s"), r.get("target_rto_s"), waiver_bound(v))
        body.append(
            f'<tr class="verdict-row" data-verdict="{esc(word)}"><td class="scn">'
            f'<a href="#{_anchor(r.get("scenario"))}">'
            f'{esc(r.get("scenario"))}</a>'
            + (f'<div class="why" title="{esc(why)}">{esc(short)}</div>' if why else "")
            + f'</td><td>{badge(word)}</td><td>{esc(r.get("target_row") or "—")}</td><td>{rto_bar}</td>'
            f'<td class="num">{esc(fmt_s(r.get("rto_write_s")))}</td><td class="num">{margin}</td>'
            f'<td class="num">{esc("—" if r.get("lost_writes") is None else r["lost_writes"])}</td>'
            f'<td class="num">{esc(fmt_s(r.get("detect_s")))}</td>'
            f'<td class="num">{esc(fmt_s(r.get("wall_s")))}</td>'
            "</tr>")
    return f'<table class="verdicts" id="verdicts"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'


def _rpo(r: dict[str, Any], v: dict[str, Any]) -> str:
    rpo = v.get("rpo") or {}
    lost, target = r.get("lost_writes"), r.get("target_rpo_s")
    if lost is None:
        return '<span class="muted">not judged</span>'
    color = COLORS["pass"] if lost == 0 else COLORS["fail"]
    text = (f'<span class="badge" style="background:{color}">{esc(lost)} lost</span> of '
            f'{esc(rpo.get("acknowledged", "?"))} '
            f'acknowledged writes; {esc(rpo.get("unknown", 0))} of unknown outcome (never counted lost)')
    if target:
        text += "<br>" + bar(r.get("rpo_window_s") or 0.0, target, None, label="loss window")
        text += f' loss window {esc(fmt_s(r.get("rpo_window_s")))} of {esc(fmt_s(target))}'
    elif target is not None:
        text += " — target: no acknowledged write lost"
    if r.get("backup_age_s") is not None:
        text += f'<br>backup age {esc(fmt_s(r["backup_age_s"]))}'
    return text


def _alerts(v: dict[str, Any]) -> str:
    det = v.get("detection") or {}
    rows = []
    for e in det.get("expectations") or []:
        for name, a in (e.get("alerts") or {}).items():
            rows.append(f"<tr><td>{esc(name)}</td><td>{'fired' if a.get('fired') else '<b>did not fire</b>'}</td>"
                        f'<td class="num">{esc(fmt_s(a.get("detect_s")))} '
                        f'(≤ {esc(fmt_s(e.get("detect_target_s")))})'
                        f'</td><td class="num">{esc(fmt_s(a.get("resolve_s")))} '
                        f'(≤ {esc(fmt_s(e.get("resolve_target_s")))})</td>'
                        f'<td>{esc(e.get("f"))} {esc(e.get("target"))}</td></tr>')
    for name, u in (det.get("unexpected_critical") or {}).items():
        rows.append(f'<tr><td>{esc(name)}</td><td>critical, not expected</td><td class="num">first at '
                    f'{esc(fmt_s(u.get("first_at")))}</td><td class="num">×{esc(u.get("count"))}</td>'
                    "<td></td></tr>")
    if not rows:
        return '<p class="muted">no alert expected or recorded' + (
            f" (feed: {esc(det.get('feed'))})" if det.get("feed") else "") + "</p>"
    return ("<table><tr><th>alert</th><th>state</th><th>time-to-detect</th><th>time-to-resolve</th>"
            f"<th>fault</th></tr>{''.join(rows)}</table>")


def _evidence(v: dict[str, Any]) -> str:
    faults = (v.get("fault_effect") or {}).get("faults") or []
    if not faults:
        return '<p class="muted">no fault injected, or none observed</p>'
    rows = "".join(
        f"<tr><td>#{esc(f.get('fault'))} {esc(f.get('f'))}</td><td>{esc(f.get('target'))}</td>"
        f"<td>{'took effect' if f.get('observed') else '<b>no effect seen</b>'}</td>"
        f'<td class="num">{esc(fmt_s(f.get("after_s")))}</td><td>{esc(f.get("evidence"))}</td></tr>'
        for f in faults)
    return ("<table><tr><th>fault</th><th>target</th><th>effect</th><th>seen after</th><th>evidence</th></tr>"
            f"{rows}</table>")


def _findings(v: dict[str, Any], r: dict[str, Any]) -> str:
    found = [f for f in v.get("findings") or [] if isinstance(f, dict)]
    if not found:
        reasons = v.get("reasons") or ([r["reason"]] if r.get("reason") else [])
        found = [{"severity": r.get("verdict"), "code": "", "text": t} for t in reasons]
    if not found:
        return '<p class="muted">none</p>'
    items = "".join(
        f'<li><span class="sev" style="color:{COLORS.get(str(f.get("severity")), "#57606a")}">'
        f'{esc(f.get("severity"))}</span>{esc(f.get("text"))}'
        + (f' <span class="muted">[{esc(f.get("code"))}]</span>' if f.get("code") else "") + "</li>"
        for f in found)
    return f'<ul class="findings">{items}</ul>'


def _phases(v: dict[str, Any], rto: float | None) -> str:
    faults = [f for f in (v.get("recovery_phases") or {}).get("faults") or [] if f.get("phases")]
    if not faults:
        return ""
    out = ["<h3>Recovery phases (seconds after the fault)</h3>"]
    for f in faults:
        rows = "".join(
            f'<tr><td><span style="color:{PHASE_COLORS.get(p.get("phase"), "#57606a")}">■</span> '
            f'{esc(p.get("phase"))}</td><td class="num">{float(p["at_s"]):.2f} s</td>'
            f'<td class="num">{float(p.get("duration_s") or 0):.2f} s</td><td class="muted">'
            f'{esc(SHORT.get(str(p.get("phase")), ""))}</td></tr>'
            for p in f.get("phases") or [] if p.get("at_s") is not None)
        slowest = f.get("slowest")
        out.append(f'<div>#{esc(f.get("fault"))} {esc(f.get("f"))} {esc(f.get("target"))}'
                   + (f' — slowest: <b>{esc(slowest)}</b>, governed by '
                      f'{esc(", ".join(f.get("governed_by") or []))}' if slowest else "")
                   + f"</div>{phases_svg(f, rto)}"
                   f"<table><tr><th>phase</th><th>at</th><th>took</th><th>governed by</th></tr>{rows}</table>")
    return "".join(out)


def _links(run_dir: Path, d: Path) -> str:
    rel = quote(d.name)
    links = [f'<a href="{rel}/{quote(n)}">{esc(n)}</a>' for n in RAW_FILES if (d / n).is_file()]
    logs = d / "logs"
    if logs.is_dir():
        links += [f'<a href="{rel}/logs/{quote(p.name)}">logs/{esc(p.name)}</a>'
                  for p in sorted(logs.iterdir()) if p.is_file()]
    return f'<div class="links">{" ".join(links) or "<span class=muted>no files</span>"}</div>'


def _scenario(run_dir: Path, r: dict[str, Any], v: dict[str, Any]) -> str:
    word = r.get("verdict") or "unknown"
    d = _scenario_dir(run_dir, r)
    target = v.get("target") or {}
    waiver_w, waiver_r = waiver_bound(v, "write"), waiver_bound(v, "read")
    judged = v.get("judged") or {}
    rto_rows = "".join(
        f"<tr><td>{kind}</td><td>{bar(r.get(f'rto_{kind}_s'), r.get('target_rto_s'), w)}"
        f'</td><td class="num">{esc(fmt_s(r.get(f"rto_{kind}_s")))}</td></tr>'
        for kind, w in (("write", waiver_w), ("read", waiver_r)))
    png = d / ("timeline.rebuilt.png" if r.get("rebuilt") and (d / "timeline.rebuilt.png").is_file()
               else "timeline.png")
    uri = data_uri(png)
    picture = (f'<img class="timeline" alt="timeline of {esc(r.get("scenario"))}" src="{uri}">' if uri
               else '<p class="muted">no timeline picture</p>')
    time_ = r.get("time") or {}
    spent = ", ".join(f"{k} {time_[k]:.1f} s" for k in ("in fault", "after heal", "settling",
                                                      "resolving alerts", "overhead") if time_.get(k))
    return (
        f'<section class="scenario" id="{_anchor(r.get("scenario"))}" style="border-left-color:'
        f'{COLORS.get(word, "#6e7781")}"><h2>{badge(word)} {esc(r.get("scenario"))}</h2>'
        f'<div class="muted">target row {esc(target.get("row") or r.get("target_row") or "none")}'
        + (f' ({esc(target["guide_row"] + ": ") if target.get("guide_row") else ""}RTO '
           f'{esc(fmt_s(target.get("rto_s")))}, RPO {esc(fmt_s(target.get("rpo_s")))})'
           if target.get("row") else "")
        + (f" · wall {esc(fmt_s(r.get('wall_s')))}" if r.get("wall_s") is not None else "")
        + (f" · {esc(spent)}" if spent else "") + "</div>"
        '<div class="cols"><div><h3>RTO</h3>'
        f'<table>{rto_rows}</table><div class="muted">{esc(judged.get("rto") or "")}</div></div>'
        f'<div><h3>RPO</h3>{_rpo(r, v)}<div class="muted">{esc(judged.get("rpo") or "")}</div></div></div>'
        + _phases(v, r.get("rto_write_s"))
        + f"<h3>Alerts</h3>{_alerts(v)}<h3>Fault evidence</h3>{_evidence(v)}"
        f"<h3>Findings</h3>{_findings(v, r)}<h3>Timeline</h3>{picture}<h3>Raw files</h3>{_links(run_dir, d)}"
        "</section>")


def render_page(run_dir: Path) -> str:
    """The certification page of ``run_dir`` as one HTML string."""
    run_dir = Path(run_dir)
    pairs = ordered(load_run(run_dir))
    rows = [r for r, _ in pairs]
    word = overall(r.get("verdict") for r in rows)
    info = read_run_info(run_dir)
    legend = " ".join(f"{badge(w)}" for w in (*VERDICTS, "skipped"))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>pgchaos {esc(word)} — run {esc(run_dir.name)}</title><style>{CSS}</style></head><body><main>"
        + _header(run_dir, info, rows, word)
        + _verdict_table(pairs)
        + f'<p class="muted">verdicts, best to worst: {legend}. Bars: the measured write RTO; the solid mark '
          "is the row's target, the dashed one the waiver bound.</p>"
        + "".join(_scenario(run_dir, r, v) for r, v in pairs)
        + "</main></body></html>\n")


def write_page(run_dir: Path) -> Path:
    """Write ``certification.html`` into ``run_dir``; returns its path."""
    run_dir = Path(run_dir)
    path = run_dir / PAGE
    path.write_text(render_page(run_dir), encoding="utf-8")
    return path
