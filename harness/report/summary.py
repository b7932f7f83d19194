"""summary.json and summary.md of a run: one row per scenario, target vs
measured, verdict with reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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
    }


def write_summary(verdicts: list[dict[str, Any]], run_dir: Path) -> list[dict[str, Any]]:
    rows = [summary_row(v) for v in verdicts]
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").write_text(json.dumps(rows, indent=2, default=str))
    lines = [
        "| scenario | target row | RTO target | RTO write | RTO read | RPO target | lost | window "
        "| time-to-detect | time-to-resolve | verdict | wall |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['target_row'] or '—'} | {_fmt(r['target_rto_s'])} | "
            f"{_fmt(r['rto_write_s'])} | {_fmt(r['rto_read_s'])} | {_fmt(r['target_rpo_s'])} | "
            f"{_fmt(r['lost_writes'], '')} | {_fmt(r['rpo_window_s'])} | {_fmt(r['detect_s'])} | "
            f"{_fmt(r['resolve_s'])} | **{r['verdict']}** | "
            f"{_fmt(r['wall_s'])} |")
    notes = [f"- **{r['scenario']}** ({r['verdict']}): {r['reason']}" for r in rows if r["reason"]]
    text = "# pgchaos run summary\n\n" + "\n".join(lines) + "\n"
    if notes:
        text += "\n## Reasons and waivers\n\n" + "\n".join(notes) + "\n"
    (run_dir / "summary.md").write_text(text)
    return rows
