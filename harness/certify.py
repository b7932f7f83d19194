"""`pgchaos certify`: the whole catalogue, once or N times, into one report.

With --repeat N each repetition is a pytest session of its own; the
repetition report lists, per scenario, the verdicts (a flip is a scenario
whose verdict differs between repetitions), the worst of them (the one
judged) and the spread of its RTO. The exit status is the worst verdict's
(:func:`harness.verdict.exit_status`): nothing executed is a failure
("nothing was certified"), skips are listed with their reasons.

With --stacks N each repetition is N sessions at once, each on a stack of its
own running part K of the catalogue (:mod:`harness.split`); their reports are
merged into one run folder of the repetition (rep-I/<run>), the parts' own
under rep-I/stacks/K.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.assets import default_reports_dir
from harness.report.summary import counts
from harness.verdict import EXIT_FAIL, exit_status

PytestRunner = Callable[[list[str], list[str]], int]
# jobs of (paths, pytest arguments, environment, log file) run at once; their exit statuses
PartsRunner = Callable[[list[tuple[list[str], list[str], dict[str, str], Path]]], list[int]]


def _spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": round(min(values), 2), "median": round(statistics.median(values), 2),
            "max": round(max(values), 2)}


def _rows(rep_dirs: list[Path]) -> list[dict[str, Any]]:
    return [row for rep in rep_dirs for summary in sorted(rep.glob("*/summary.json"))
            for row in json.loads(summary.read_text())]


def repetition_report(rep_dirs: list[Path]) -> dict[str, Any]:
    """Per scenario: verdict per repetition, flips, the worst verdict, RTO spread (write and read)."""
    from harness.report.summary import samples

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
    worst = {name: g["verdict"] for name, g in samples(
        [{"scenario": name, "verdict": v} for name, e in scenarios.items() for v in e["verdicts"]]).items()}
    return {name: {"verdicts": e["verdicts"], "flips": len(set(e["verdicts"])) > 1,
                   "judged": worst.get(name),
                   "rto_write_s": _spread(e["write"]), "rto_read_s": _spread(e["read"])}
            for name, e in scenarios.items()}


def write_repetition_report(base: Path, report: dict[str, Any]) -> Path:
    (base / "repeat.json").write_text(json.dumps(report, indent=2))
    lines = ["# pgchaos repeatability", "",
             "| scenario | verdicts | judged (worst) | flips | RTO write min / median / max "
             "| RTO read min / median / max |",
             "|---|---|---|---|---|---|"]
    for name, r in report.items():
        w, rd = r["rto_write_s"], r["rto_read_s"]
        lines.append(f"| {name} | {', '.join(r['verdicts'])} | **{r.get('judged')}** | "
                     f"{'**yes**' if r['flips'] else 'no'} | "
                     f"{w['min']} / {w['median']} / {w['max']} | {rd['min']} / {rd['median']} / {rd['max']} |")
    path = base / "repeat.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _split_repetition(rep: Path, stacks: int, extra: list[str], weights: Path, run_parts: PartsRunner,
                      base_ports: dict[str, str], marginal_fails: bool, page: bool) -> list[int]:
    """One repetition as `stacks` sessions at once, then their reports merged into one run."""
    from harness.split import STACKS_DIR, merge_parts, part_env

    parts_dir = rep / STACKS_DIR
    jobs = []
    for k in range(1, stacks + 1):
        out = parts_dir / str(k)
        out.mkdir(parents=True, exist_ok=True)
        jobs.append((["scenarios"], ["--reports-dir", str(out), "--pgchaos-split", f"{k}/{stacks}",
                                     "--pgchaos-split-weights", str(weights),
                                     "--pgchaos-split-lock", str(parts_dir / "parts.lock"), *extra],
                     part_env(k, base_ports), out / "pytest.log"))
    codes = run_parts(jobs)
    merge_parts(parts_dir, rep / f"{time.strftime('%Y%m%d-%H%M%S')}-{stacks}-stacks", stacks=stacks,
                marginal_fails=marginal_fails, page=page)
    return codes


def certify(repeat: int, pytest_args: list[str], run_pytest: PytestRunner,
            reports_dir: Path | None = None, *, marginal_fails: bool = False, stacks: int = 1,
            run_parts: PartsRunner | None = None) -> int:
    """Run every scenario `repeat` times; the exit status of the worst verdict over every
    sample (1 when a session failed or nothing ran). The report goes under `reports_dir`
    (default ./reports of the working directory). With ``stacks`` > 1 each repetition runs
    the catalogue split over that many stacks at once (``run_parts`` starts the sessions)."""
    from harness.split import check_stacks, expected_walls, shipped_walls

    root = reports_dir or default_reports_dir()
    base = root / f"certify-{time.strftime('%Y%m%d-%H%M%S')}"
    codes, reps = [], []
    extra = [a for a in pytest_args if a != "--"]
    if check_stacks(stacks) > 1:
        if run_parts is None:
            raise ValueError("certify: stacks > 1 needs run_parts")
        from harness.stack.spec import Ports

        base_ports = Ports().as_env()
        base.mkdir(parents=True, exist_ok=True)
        weights = base / "expected-walls.json"
        weights.write_text(json.dumps({**shipped_walls(), **(expected_walls(root) if root.is_dir() else {})},
                                      indent=2))
    for i in range(1, max(1, repeat) + 1):
        rep = base / f"rep-{i}"
        reps.append(rep)
        if stacks > 1:
            assert run_parts is not None
            codes += _split_repetition(rep, stacks, extra, weights, run_parts, base_ports, marginal_fails,
                                       page="--pgchaos-no-page" not in extra)
            continue
        codes.append(run_pytest(["scenarios"], ["--reports-dir", str(rep), "--pgchaos-min-executed", "1",
                                                *extra]))
    report = repetition_report(reps)
    path = write_repetition_report(base, report)
    print(path.read_text())
    rows = _rows(reps)
    tally = counts(rows)
    print(f"{tally['executed']} executed, {tally['skipped']} skipped, {tally['errored']} errored "
          f"over {len(reps)} repetition(s)")
    for row in rows:
        if row.get("verdict") == "skipped":
            print(f"  skipped {row.get('scenario')}: {row.get('reason')}")
    print(f"reports: {base}")
    for page in sorted(base.glob("rep-*/*/certification.html")):
        print(f"certification page: {page}")
    if tally["executed"] == 0:
        print("nothing was certified: no scenario ran")
        return EXIT_FAIL
    status = exit_status([r.get("verdict") for r in rows if r.get("verdict") != "skipped"],
                         marginal_fails=marginal_fails)
    return EXIT_FAIL if any(code not in (0, 5) for code in codes) else status
