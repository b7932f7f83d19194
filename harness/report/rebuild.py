"""`pgchaos report RUN_DIR`: re-judge a finished run from its histories.

For each scenario directory: the same verdict pipeline as the live run
(:func:`harness.verdict.check_history`: every checker composed) runs again over
history.jsonl with the run's inputs — the target row its verdict.json names
(waivers and rows from ``--targets FILE`` when given), the backup age from
its figures, its stable window. Scenario checks registered in code
(``ScenarioRun.add_check``) are closures that cannot be re-run from the
history: their recorded results are composed again as they were, marked
``"source": "recorded"``. The fields only the live run could know (phases,
figures, steady state, log alerts, ...) are kept, and a verdict the run forced
to "fail" for a steady-state or log-gate reason stays "fail".

The original verdict.json is never overwritten: the new verdict goes to
verdict.rebuilt.json beside it and its picture to timeline.rebuilt.png; the
run's summary.json/.md and junit.xml are written from the rebuilt verdicts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Final

from harness.bounds import apply_recorded
from harness.checkers.rto import DEFAULT_STABLE_S
from harness.errors import PgchaosError
from harness.history import HistoryFormatError, Op, read_history
from harness.report.junit import write_junit
from harness.report.summary import write_summary
from harness.report.timeline import render_timeline
from harness.targets import load_targets
from harness.verdict import BUILTIN_CHECKS, Finding, check_history, exit_status, force_verdict

HISTORY: Final = "history.jsonl"
VERDICT: Final = "verdict.json"
REBUILT: Final = "verdict.rebuilt.json"
TIMELINE: Final = "timeline.rebuilt.png"
# Built-in checks that run on every history: never taken from a recorded verdict.
ALWAYS_RUN: Final = tuple(c for c in BUILTIN_CHECKS if c != "split-brain")
# Findings ScenarioRun adds from outside the history; they force "fail" ("error" for an error).
RUN_CODES: Final = ("steady-state", "log-gate", "alerting", "load-not-running", "not-recovering", "error")
# The same, for verdicts written before findings carried codes: by the reason's prefix.
RUN_REASONS: Final = ("steady state", "log gate")


def _load_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise PgchaosError(f"{path}: not valid JSON ({e}); delete it to re-judge from the history alone") from None
    if not isinstance(doc, dict):
        raise PgchaosError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    return doc


def run_findings(old: dict[str, Any]) -> list[Finding]:
    """Findings of ``old`` from outside the history (an error, the steady state, the log
    gate, alerting): they force the verdict. Read by code; verdicts written before codes
    existed are read by the reason's prefix."""
    coded = [f for f in old.get("findings") or [] if isinstance(f, dict) and f.get("code") in RUN_CODES]
    if coded:
        return [Finding(f["code"], str(f.get("severity") or "fail"), str(f.get("text") or "")) for f in coded]
    alerts = [a for a in old.get("log_alerts") or [] if isinstance(a, dict) and a.get("gate")]
    gated = [f"log gate: {a.get('service')}: {a.get('line')}" for a in alerts]
    reasons = [r for r in old.get("reasons") or [] if isinstance(r, str) and r.startswith(RUN_REASONS)]
    reasons += [g for g in gated if g not in reasons]
    if (old.get("steady_state") or {}).get("after") is False and not any(
            r.startswith("steady state") for r in reasons):
        reasons.append("steady state did not return after heal-all (as recorded by the run)")
    return [Finding("log-gate" if r.startswith("log gate") else "steady-state", "fail", r) for r in reasons]


def recorded_checks(old: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Scenario checks of ``old``, to be composed as recorded where the pipeline does not
    re-run them (a built-in that runs again on this history replaces its recorded result)."""
    checks = old.get("scenario_checks") or {}
    return {name: res for name, res in checks.items()
            if isinstance(res, dict) and name not in ALWAYS_RUN}


def rejudge(scenario_dir: Path, old: dict[str, Any],
            targets_path: Path | None = None) -> tuple[dict[str, Any], list[Op] | None]:
    """The rebuilt verdict of one scenario (and its ops, None when the history is unreadable)."""
    row = (old.get("target") or {}).get("row")
    target, waivers = None, []
    if row is not None:
        targets = load_targets(targets_path)
        target, waivers = targets.row(row), targets.waivers_for(row)
        waivers = apply_recorded(waivers, old.get("derived_bounds"))  # the bounds the run derived
    history = scenario_dir / HISTORY
    backup_age = (old.get("figures") or {}).get("backup_age_s", (old.get("rpo") or {}).get("backup_age_s"))
    recorded = recorded_checks(old)
    ops: list[Op] | None = None
    try:
        ops = read_history(history)
        new = check_history(ops, target, waivers, stable_s=old.get("stable_s", DEFAULT_STABLE_S),
                            backup_age_s=backup_age, recorded=recorded)
    except HistoryFormatError as e:
        new = check_history([], target, waivers, recorded=recorded)
        new.update(valid=False, verdict="unknown", reasons=[f"history could not be read: {e}"])
    new["history"] = str(history)
    forced = run_findings(old)
    if forced:
        force_verdict(new, "error" if any(f.severity == "error" for f in forced) else "fail", forced)
    new.update({k: v for k, v in old.items() if k not in new})
    new.setdefault("scenario", scenario_dir.name)
    new["rebuilt"] = {"from": str(scenario_dir / VERDICT) if old else None,
                      "original_verdict": old.get("verdict"),
                      "recorded_checks": sorted(recorded)}
    return new, ops


def _scenario_dirs(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.iterdir()
                  if p.is_dir() and ((p / HISTORY).exists() or (p / VERDICT).exists()))


def rebuild_run(run_dir: Path, targets_path: Path | None = None) -> list[dict[str, Any]]:
    """Re-judge every scenario of ``run_dir``; write verdict.rebuilt.json, timeline.rebuilt.png,
    the summary and junit.xml (from the rebuilt verdicts).

    A scenario directory without history.jsonl keeps its verdict.json as it is
    (e.g. a skipped scenario). verdict.json itself is never written. Returns the summary rows.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PgchaosError(f"{run_dir}: no such run directory (expected reports/<run-id>/)")
    dirs = _scenario_dirs(run_dir)
    if not dirs:
        raise PgchaosError(f"{run_dir}: no scenario directory with a {HISTORY} or {VERDICT}")
    if targets_path is not None:
        load_targets(targets_path)  # a bad table is reported before anything is written
    verdicts = []
    for d in dirs:
        old = _load_json(d / VERDICT)
        if not (d / HISTORY).exists():
            verdicts.append({"scenario": d.name, **old})
            continue
        verdict, ops = rejudge(d, old, targets_path)
        (d / REBUILT).write_text(json.dumps(verdict, indent=2, default=str))
        if ops is not None:
            render_timeline(d / HISTORY, verdict, d / TIMELINE, ops=ops)
        verdicts.append(verdict)
    rows = write_summary(verdicts, run_dir)
    write_junit(rows, run_dir / "junit.xml", run_id=run_dir.name)
    return rows


def main_report(run_dir: str, targets_path: str | None = None) -> int:
    """`pgchaos report`: the exit status of :func:`harness.verdict.exit_status` over the
    rebuilt verdicts (skipped scenarios aside): 0 pass/waived, 3 marginal, 4 unjudged, 1 otherwise.

    Raises PgchaosError (exit 2) for a missing run directory or a bad targets file.
    """
    path = Path(run_dir)
    rows = rebuild_run(path, None if targets_path is None else Path(targets_path))
    sys.stdout.write((path / "summary.md").read_text())
    print(f"\nwritten: {path / 'summary.md'}, {path / 'summary.json'}, {path / 'junit.xml'}, "
          f"<scenario>/{REBUILT} and <scenario>/{TIMELINE} (every {VERDICT} left as the run wrote it)")
    from harness.report.page import write_page

    print(f"certification page: {write_page(path)}")
    return exit_status([r.get("verdict") for r in rows if r.get("verdict") != "skipped"])
