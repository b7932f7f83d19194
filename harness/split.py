"""The catalogue split over several identical stacks at once (`pgchaos certify --stacks N`).

Each part is a pytest session of its own with `--pgchaos-split K/N`: every
session collects the same scenarios in the same order and keeps the ones
:func:`plan` gives part K, so the parts need not talk to each other. The plan
puts the longest scenario first onto the least loaded part (LPT), weighing each
by its wall time in the newest reports found (:func:`expected_walls`), else as
the catalogue ships it measured (:func:`shipped_walls`), else :data:`DEFAULT_WALL_S`;
a scenario skipped at collection weighs nothing.

While parts run at once, a scenario marked ``exclusive`` (a restore, a flood of clients:
work that stalls the other stacks' commits for longer than a tight target allows) runs
while no other part runs one: every scenario holds :class:`PartsLock` shared, an
exclusive one holds it alone, and a waiting exclusive one goes first.

Part K provisions its own stack, on the host ports of part 1 moved by
``(K-1) * PORT_STEP`` (:func:`part_env`), in the same state folder. Every
scenario runs and is judged as it would be on one stack; what differs is the
machine around it (N stacks share its cores), which the merged report says.
:func:`merge_parts` makes one run folder of the parts' runs: summary, JUnit,
run-info (with ``stacks``) and the certification page, the scenarios' folders
linked from where their part wrote them.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from harness.errors import PgchaosError

PORT_STEP: Final = 1000  # part K's host ports: part 1's + (K-1) * PORT_STEP
MAX_STACKS: Final = 8
DEFAULT_WALL_S: Final = 20.0  # a scenario no report has timed yet
NEWEST_SUMMARIES: Final = 40  # how many of the newest summaries expected_walls reads
_PART = re.compile(r"^(\d+)/(\d+)$")
_PARAMS = re.compile(r"\[.*\]$")
STACKS_DIR: Final = "stacks"  # certify: rep-I/stacks/K holds part K's run


def parse_part(text: str) -> tuple[int, int]:
    """"K/N" as (K, N), 1 <= K <= N <= MAX_STACKS; PgchaosError otherwise."""
    m = _PART.match(text.strip())
    if not m or not 1 <= int(m[1]) <= int(m[2]) <= MAX_STACKS:
        raise PgchaosError(f"--pgchaos-split {text!r}: give K/N with 1 <= K <= N <= {MAX_STACKS} (e.g. 2/3)")
    return int(m[1]), int(m[2])


def check_stacks(n: int) -> int:
    if not 1 <= n <= MAX_STACKS:
        raise PgchaosError(f"--stacks {n}: give 1 to {MAX_STACKS} stacks")
    return n


def scenario_key(name: str) -> str:
    """A test's name without its parameters (what the reports call the scenario)."""
    return _PARAMS.sub("", name)


def plan(weights: Sequence[float], parts: int) -> list[int]:
    """The part (1..parts) of each item: heaviest first onto the least loaded part; ties go to
    the earlier item and the lower part, so every session computes the same plan."""
    order = sorted(range(len(weights)), key=lambda i: (-weights[i], i))
    loads = [(0.0, p) for p in range(1, parts + 1)]
    heapq.heapify(loads)
    out = [0] * len(weights)
    for i in order:
        load, part = heapq.heappop(loads)
        out[i] = part
        heapq.heappush(loads, (load + max(0.0, weights[i]), part))
    return out


def expected_walls(reports_dir: Path, newest: int = NEWEST_SUMMARIES) -> dict[str, float]:
    """Each scenario's wall time in the newest summary that timed it, among the ``newest``
    summaries under ``reports_dir`` (a run's, a certify repetition's, or a part's)."""
    found: list[tuple[float, Path]] = []
    for pattern in ("*/summary.json", "certify-*/rep-*/*/summary.json",
                    f"certify-*/rep-*/{STACKS_DIR}/*/*/summary.json"):
        for path in reports_dir.glob(pattern):
            if not path.parent.is_symlink():
                try:
                    found.append((path.stat().st_mtime, path))
                except OSError:
                    continue
    walls: dict[str, float] = {}
    for _, path in sorted(found, reverse=True)[:newest]:
        try:
            rows = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for row in rows if isinstance(rows, list) else []:
            wall = row.get("wall_s") if isinstance(row, dict) else None
            if isinstance(wall, int | float) and wall >= 0:
                walls.setdefault(scenario_key(str(row.get("scenario"))), float(wall))
    return walls


def shipped_walls() -> dict[str, float]:
    """The catalogue's wall times as measured on the reference stack (scenarios/expected-walls.json,
    two stacks at once on 2 cores): the plan's weights before any report of one's own."""
    from harness.assets import scenarios_dir

    try:
        return load_walls(scenarios_dir() / "expected-walls.json")
    except PgchaosError:
        return {}


def load_walls(path: str | Path | None) -> dict[str, float]:
    """A weights file (scenario -> seconds) as written by certify; {} when none is given."""
    if not path:
        return {}
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise PgchaosError(f"--pgchaos-split-weights {path}: not a JSON file of scenario seconds "
                           f"({exc})") from None
    if not isinstance(doc, dict) or not all(isinstance(v, int | float) for v in doc.values()):
        raise PgchaosError(f"--pgchaos-split-weights {path}: expected an object of scenario name -> seconds")
    return {str(k): float(v) for k, v in doc.items()}


def part_env(part: int, base: Mapping[str, str]) -> dict[str, str]:
    """PGCHAOS_<NAME>_PORT of part ``part``: ``base`` (part 1's, from Ports.as_env) moved by
    (part-1) * PORT_STEP."""
    env = {k: str(int(v) + (part - 1) * PORT_STEP) for k, v in base.items()}
    high = [f"{k}={v}" for k, v in env.items() if int(v) > 65535]
    if high:
        raise PgchaosError(f"--stacks: part {part}'s ports run past 65535 ({', '.join(high)}); "
                           "give fewer stacks or lower PGCHAOS_*_PORT")
    return env


def part_run(parts_dir: Path, part: int) -> Path | None:
    """The run folder part ``part`` wrote (the one with a summary.json), None when it wrote none."""
    folder = parts_dir / str(part)
    runs = sorted(r for r in folder.iterdir() if (r / "summary.json").is_file()) if folder.is_dir() else []
    return runs[-1] if runs else None


def merge_parts(parts_dir: Path, into: Path, *, stacks: int, marginal_fails: bool = False,
                page: bool = True) -> list[dict[str, Any]]:
    """One run folder ``into`` of the parts' runs under ``parts_dir``: summary.json/.md and
    junit.xml over every row, run-info.json (part 1's, with ``stacks``), the scenarios'
    folders linked, the certification page. Returns the rows."""
    from harness.report.junit import write_junit
    from harness.report.run_info import RUN_INFO
    from harness.report.summary import summary_row, write_rows

    found = {k: part_run(parts_dir, k) for k in range(1, stacks + 1)}
    runs = [run for run in found.values() if run is not None]
    into.mkdir(parents=True, exist_ok=True)
    # a part that wrote no report is an error row: the merged run never reads as complete without it
    rows: list[dict[str, Any]] = [summary_row({
        "scenario": f"part {k} of {stacks}", "verdict": "error",
        "reasons": [f"its session wrote no report; see {parts_dir / str(k) / 'pytest.log'}"]})
        for k, run in found.items() if run is None]
    for run in runs:
        for row in json.loads((run / "summary.json").read_text()):
            rows.append(row)
            source, link = run / str(row.get("scenario")), into / str(row.get("scenario"))
            if source.is_dir() and not link.exists():
                link.symlink_to(os.path.relpath(source, into), target_is_directory=True)
    where = ", ".join(f"part {r.parent.name}: {os.path.relpath(r, into)}" for r in runs)
    write_rows(rows, into, marginal_fails,
               note=f"Run on {stacks} identical stacks at once, the scenarios split between them ({where}).")
    write_junit(rows, into / "junit.xml", run_id=into.name, marginal_fails=marginal_fails)
    info: dict[str, Any] = {}
    if runs:
        try:
            info = json.loads((runs[0] / RUN_INFO).read_text())
        except (OSError, ValueError):
            info = {}
    info.update(run=into.name, written=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                stacks={"count": stacks, "runs": [os.path.relpath(r, into) for r in runs]})
    (into / RUN_INFO).write_text(json.dumps(info, indent=2, default=str))
    if page:
        from harness.report.page import write_page

        write_page(into)
    return rows


class PartsLock:
    """A readers-writer lock of the parts, on two files beside each other (flock): scenarios
    hold it shared, an ``exclusive`` one alone. Writer first: whoever asks passes the turnstile
    (held exclusively while asking), so a waiting exclusive scenario keeps new shared ones out
    until it has run."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def hold(self, exclusive: bool) -> Iterator[float]:
        """Held for the body; yields the seconds spent waiting for it."""
        started = time.monotonic()
        with open(self.path.with_suffix(".turnstile"), "a") as turnstile, open(self.path, "a") as lock:
            fcntl.flock(turnstile, fcntl.LOCK_EX)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            finally:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
            try:
                yield time.monotonic() - started
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
