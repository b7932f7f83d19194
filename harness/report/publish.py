"""`pgchaos report --page / --trend / --html`: the pages people open, for runs already written.

Each names what it wrote, one line per file, the paths last. Without a run
named, the newest run under ./reports is used.
"""

from __future__ import annotations

import time
from pathlib import Path

from harness.assets import default_reports_dir
from harness.errors import PgchaosError
from harness.report.allure_site import SITE, generate_site
from harness.report.page import write_page
from harness.report.trend import find_runs, write_trend


def is_run(path: Path) -> bool:
    """A run folder: a summary.json, or a scenario folder with a verdict.json."""
    return path.is_dir() and ((path / "summary.json").is_file() or any(path.glob("*/verdict.json")))


def latest_run(reports: Path) -> Path:
    """The newest run folder directly under ``reports`` (by name: run ids sort by time)."""
    runs = sorted((p for p in reports.iterdir() if is_run(p)), key=lambda p: (p.name, p.stat().st_mtime)) \
        if reports.is_dir() else []
    if not runs:
        raise PgchaosError(f"no run under {reports}: name one (reports/<run-id>)")
    return runs[-1]


def _runs(named: list[str], extra: str | None, reports: Path) -> list[Path]:
    runs = [Path(p) for p in named] or ([Path(extra)] if extra else [latest_run(reports)])
    for run in runs:
        if not is_run(run):
            raise PgchaosError(f"{run}: not a run folder (no summary.json, no <scenario>/verdict.json)")
    return runs


def publish(pages: list[str] | None, trend: str | None, html: list[str] | None, *,
            install_allure: bool = False, extra_run: str | None = None) -> int:
    """Write what was asked for; 0 when everything was written (errors raise PgchaosError)."""
    reports = default_reports_dir()
    written: list[str] = []
    if html is not None:
        for run in _runs(html, extra_run, reports):
            t0 = time.monotonic()
            index = generate_site(run.parent / "allure", run / SITE, run, install=install_allure,
                                  name=f"pgchaos run {run.name}")
            written.append(f"Allure site ({time.monotonic() - t0:.1f} s): {index}")
    if trend is not None:
        root = Path(trend) if trend else reports
        if not root.is_dir():
            raise PgchaosError(f"{root}: no such folder of runs")
        t0 = time.monotonic()
        path = write_trend(root)
        written.append(f"trend page ({len(find_runs(root))} runs, {time.monotonic() - t0:.2f} s): {path}")
    if pages is not None:
        for run in _runs(pages, extra_run, reports):
            t0 = time.monotonic()
            path = write_page(run)
            written.append(f"certification page ({path.stat().st_size / 2**20:.1f} MiB, "
                           f"{time.monotonic() - t0:.2f} s): {path}")
    for line in written:
        print(line)
    return 0
