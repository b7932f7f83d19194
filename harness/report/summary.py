"""summary.json and summary.md of a run: one row per scenario, target vs
measured, margin to the bound, verdict with reason; the executed / skipped /
errored counts; with repeated samples, the worst verdict per scenario, the
spread of its RTO and the flaky ones."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any, Final

from harness.report.breakdown import SEGMENTS, breakdown
from harness.verdict import VERDICTS

SAMPLE: Final = re.compile(r"\[sample(\d+)\]$")
# worst first: the verdict a scenario gets from its samples
_WORST: Final = ("error", "fail", "unknown", "unjudged", "waived", "marginal", "pass")


def _fmt(x: Any, unit: str = " s") -> str:
    if x is None:
        return "—"
    return f"{x:.1f}{unit}" if isinstance(x, float) else f"{x}{unit}"


def _detection(verdict: dict[str, Any]) -> tuple[float | None, float | None, str]:
    """Time-to-detect (first expected alert), time-to-resolve (the slowest) and the alerts."""
    det = verdict.get("detection") or {}
    alerts = [(n, a) for e in det.get("expectations") or [] for n, a in (e.get("alerts") or {}).items()]
    resolves = [a["resolve_s"] for _, a in alerts if a.get("resolve_s") is not None]
    return det.get("detect_s"), max(resolves) if resolves else None, ", ".join(n for n, _ in alerts)


def summary_row(verdict: dict[str, Any]) -> dict[str, Any]:
    target = verdict.get("target") or {}
    detect, resolve, alerts = _detection(verdict)
    rto, rpo = verdict.get("rto_s") or {}, verdict.get("rpo") or {}
    reason = "; ".join(verdict.get("reasons") or [])
    if verdict.get("verdict") == "waived":
        reason = "; ".join(w.get("reason", "") for w in verdict.get("waivers", [])) or reason
    margins = [m for m in verdict.get("margins") or [] if m.get("ratio") is not None]
    closest = max(margins, key=lambda m: m["ratio"]) if margins else None
    return {
        "scenario": verdict.get("scenario"),
        "target_row": target.get("row"),
        "target_rto_s": target.get("rto_s"),
        "rto_write_s": rto.get("write"),
        "rto_read_s": rto.get("read"),
        "target_rpo_s": target.get("rpo_s"),
        "lost_writes": rpo.get("lost"),
        "rpo_window_s": rpo.get("window_s"),
        "unknown_writes": rpo.get("unknown"),
        "backup_age_s": rpo.get("backup_age_s"),
        "detect_s": detect,
        "resolve_s": resolve,
        "expected_alerts": alerts,
        "verdict": verdict.get("verdict"),
        "reason": reason,
        "wall_s": verdict.get("wall_s"),
        "figures": verdict.get("figures", {}),
        "rebuilt": bool(verdict.get("rebuilt")),
        "margin": None if closest is None else {k: closest[k] for k in ("kind", "measured_s", "bound_s",
                                                                         "against", "ratio")},
        "codes": sorted({f.get("code") for f in verdict.get("findings") or []
                         if f.get("severity") != "note"} - {None}),
        "time": breakdown(verdict.get("phases") or [], verdict.get("wall_s")),
    }


def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Scenarios executed (judged, errors included), skipped, errored, and per verdict word."""
    words = [r.get("verdict") for r in rows]
    tally = {w: words.count(w) for w in (*VERDICTS, "skipped") if w in words}
    return {"executed": sum(1 for w in words if w != "skipped"), "skipped": words.count("skipped"),
            "errored": words.count("error"), "verdicts": tally}  # type: ignore[dict-item]


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "max": round(max(values), 3)}


def samples(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows of repeated samples (``name[sampleN]``) grouped by scenario: the worst verdict,
    each sample's verdict, min/median/max RTO, and ``flaky`` when the verdicts differ."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        name = str(r.get("scenario") or "?")
        groups.setdefault(SAMPLE.sub("", name), []).append(r)
    out = {}
    for name, group in groups.items():
        words = [str(r.get("verdict")) for r in group]
        judged = [w for w in words if w != "skipped"] or words
        worst = min(judged, key=lambda w: _WORST.index(w) if w in _WORST else -1)
        out[name] = {
            "samples": len(group), "verdicts": words, "verdict": worst,
            "flaky": len(set(judged)) > 1,
            "rto_write_s": _spread([r["rto_write_s"] for r in group if r.get("rto_write_s") is not None]),
            "rto_read_s": _spread([r["rto_read_s"] for r in group if r.get("rto_read_s") is not None]),
            "lost_writes": max((r.get("lost_writes") or 0 for r in group), default=0),
        }
    return out


def _margin_text(m: dict[str, Any] | None) -> str:
    if not m:
        return "—"
    against = "" if m["against"] == "target" else f" ({m['against']})"
    return f"{m['ratio']:.0%} of {m['bound_s']:g} s{against}"


def _spread_text(x: dict[str, float] | None) -> str:
    return "—" if x is None else f"{x['min']:.1f} / {x['median']:.1f} / {x['max']:.1f} s"


def write_summary(verdicts: list[dict[str, Any]], run_dir: Path,
                  margin_fails: bool = False) -> list[dict[str, Any]]:
    """Write summary.json (the rows, as before) and summary.md; returns the rows."""
    return write_rows([summary_row(v) for v in verdicts], run_dir, margin_fails)


def write_rows(rows: list[dict[str, Any]], run_dir: Path, margin_fails: bool = False,
               note: str | None = None) -> list[dict[str, Any]]:
    """summary.json and summary.md of rows already made (:func:`summary_row`): one session's,
    or several sessions' merged; ``note`` is a line under the counts."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").write_text(json.dumps(rows, indent=2, default=str))
    tally = counts(rows)
    (run_dir / "summary-counts.json").write_text(json.dumps(
        {**tally, "marginal_fails": margin_fails, "samples": samples(rows)}, indent=2, default=str))
    lines = [
        "| scenario | target row | RTO target | RTO write | RTO read | margin | RPO target | lost | window "
        "| time-to-detect | time-to-resolve | verdict | wall |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['target_row'] or '—'} | {_fmt(r['target_rto_s'])} | "
            f"{_fmt(r['rto_write_s'])} | {_fmt(r['rto_read_s'])} | {_margin_text(r['margin'])} | "
            f"{_fmt(r['target_rpo_s'])} | "
            f"{_fmt(r['lost_writes'], '')} | {_fmt(r['rpo_window_s'])} | {_fmt(r['detect_s'])} | "
            f"{_fmt(r['resolve_s'])} | **{r['verdict']}** | "
            f"{_fmt(r['wall_s'])} |")
    words = ", ".join(f"{n} {w}" for w, n in tally["verdicts"].items())
    text = (f"# pgchaos run summary\n\n**{tally['executed']} executed, {tally['skipped']} skipped, "
            f"{tally['errored']} errored** ({words or 'nothing ran'})"
            + ("; marginal counts as a failure in this run" if margin_fails else "") + "\n\n"
            + (f"{note}\n\n" if note else ""))
    if tally["executed"] == 0:
        text += "**Nothing was certified: no scenario ran.**\n\n"
    text += "\n".join(lines) + "\n"
    grouped = samples(rows)
    if any(g["samples"] > 1 for g in grouped.values()):
        text += ("\n## Samples (worst verdict judged)\n\n| scenario | samples | verdicts | judged | flaky "
                 "| RTO write min / median / max | RTO read min / median / max | lost (worst) |\n"
                 "|---|---|---|---|---|---|---|---|\n")
        for name, g in grouped.items():
            text += (f"| {name} | {g['samples']} | {', '.join(g['verdicts'])} | **{g['verdict']}** | "
                     f"{'**yes**' if g['flaky'] else 'no'} | {_spread_text(g['rto_write_s'])} | "
                     f"{_spread_text(g['rto_read_s'])} | {g['lost_writes']} |\n")
    timed = [r for r in rows if r.get("time")]
    if timed:
        total = {k: sum(r["time"][k] for r in timed) for k in (*SEGMENTS, "detecting", "wall")}
        share = total["overhead"] / total["wall"] if total["wall"] else 0.0
        text += ("\n## Where the time went (s)\n\n| scenario | " + " | ".join(SEGMENTS)
                 + " | of which detecting | wall |\n|---|" + "---|" * (len(SEGMENTS) + 2) + "\n")
        for r in [*timed, {"scenario": "**all**", "time": total}]:
            t = r["time"]
            text += (f"| {r['scenario']} | " + " | ".join(f"{t[k]:.1f}" for k in SEGMENTS)
                     + f" | {t['detecting']:.1f} | {t['wall']:.1f} |\n")
        text += f"\nOverhead: {share:.0%} of the wall time.\n"
    notes = [f"- **{r['scenario']}** ({r['verdict']}): {r['reason']}" for r in rows if r["reason"]]
    if notes:
        text += "\n## Reasons, waivers and skips\n\n" + "\n".join(notes) + "\n"
    (run_dir / "summary.md").write_text(text)
    return rows
