"""`pgchaos certify`: the whole catalogue, once or N times, into one report.

With --repeat N each repetition is a pytest session of its own; the
repetition report lists, per scenario, the verdicts (a flip is a scenario
whose verdict differs between repetitions) and the spread of its RTO.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.assets import default_reports_dir

PytestRunner = Callable[[list[str], list[str]], int]


def _spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": round(min(values), 2), "median": round(statistics.median(values), 2),
            "max": round(max(values), 2)}


def repetition_report(rep_dirs: list[Path]) -> dict[str, Any]:
    """Per scenario: verdict per repetition, flips, RTO spread (write and read)."""
    scenarios: dict[str, dict[str, Any]] = {}
    for rep in rep_dirs:
        for summary in sorted(rep.glob("*/summary.json")):
            for row in json.loads(summary.read_text()):
                entry = scenarios.setdefault(row["scenario"], {"verdicts": [], "write": [], "read": []})
                entry["verdicts"].append(row["verdict"])
                for kind in ("write", "read"):
                    value = row.get(f"rto_{kind}_s")
                    if value is not None:
                        entry[kind].append(value)
    return {name: {"verdicts": e["verdicts"], "flips": len(set(e["verdicts"])) > 1,
                   "rto_write_s": _spread(e["write"]), "rto_read_s": _spread(e["read"])}
            for name, e in scenarios.items()}


def write_repetition_report(base: Path, report: dict[str, Any]) -> Path:
    (base / "repeat.json").write_text(json.dumps(report, indent=2))
    lines = ["# pgchaos repeatability", "",
             "| scenario | verdicts | flips | RTO write min / median / max | RTO read min / median / max |",
             "|---|---|---|---|---|"]
    for name, r in report.items():
        w, rd = r["rto_write_s"], r["rto_read_s"]
        lines.append(f"| {name} | {', '.join(r['verdicts'])} | {'**yes**' if r['flips'] else 'no'} | "
                     f"{w['min']} / {w['median']} / {w['max']} | {rd['min']} / {rd['median']} / {rd['max']} |")
    path = base / "repeat.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def certify(repeat: int, pytest_args: list[str], run_pytest: PytestRunner,
            reports_dir: Path | None = None) -> int:
    """Run every scenario `repeat` times; non-zero when any session failed a target.
    The report goes under `reports_dir` (default ./reports of the working directory)."""
    base = (reports_dir or default_reports_dir()) / f"certify-{time.strftime('%Y%m%d-%H%M%S')}"
    codes, reps = [], []
    extra = [a for a in pytest_args if a != "--"]
    for i in range(1, max(1, repeat) + 1):
        rep = base / f"rep-{i}"
        reps.append(rep)
        codes.append(run_pytest(["scenarios"], ["--reports-dir", str(rep), *extra]))
    report = repetition_report(reps)
    path = write_repetition_report(base, report)
    print(path.read_text())
    print(f"reports: {base}")
    return 0 if all(code == 0 for code in codes) else 1
