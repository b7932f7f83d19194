"""`pgchaos gate`: a config change judged against a baseline, not only against the targets.

The same scenarios run on the baseline (the reference config by default) and
on the candidate (a variant under compose/variants/, or a manifest), N
samples each, interleaved on the same machine: baseline sample 1, candidate
sample 1, baseline sample 2, ... Both stacks stay up for the whole gate (the
candidate on offset ports and its own state folder), so a sample costs a
scenario, not a stack.

Per scenario, and per recovery phase (harness.checkers.phases), the figures
of both sides are compared with one rule (:func:`regressed`): every
candidate sample above the baseline's maximum by more than max(20 % of that
maximum, 1 s) (the candidate's minimum against the baseline's maximum). The
baseline's own spread is the noise the rule allows; the minimum, not the
median, because some phases are bimodal on the reference stack (PgBouncer
serves the new leader after 0.2 s or after 2-3.6 s, seemingly at random), and
a median of three flagged that noise. Acknowledged writes lost by the candidate and not by the
baseline, or a worse verdict, are regressions too. A regression fails the
gate even when every absolute target passes, and names the phase that
regressed and the settings that govern it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from harness.checkers.phases import SHORT
from harness.errors import PgchaosError
from harness.report.summary import SAMPLE
from harness.stack.spec import shifted_ports
from harness.verdict import EXIT_FAIL, VERDICTS, exit_status

REL: Final = 0.20  # the candidate's median may exceed the baseline's max by this fraction ...
ABS_S: Final = 1.0  # ... or by this many seconds, whichever is larger
METRICS: Final = ("rto_write_s", "rto_read_s")
# Candidate stacks run beside the baseline: offset ports and a state folder of their own.
CANDIDATE_ENV: Final = {**shifted_ports(20000), "PGCHAOS_STATE_DIR": "/var/lib/pgchaos-gate"}


def regressed(baseline: list[float], candidate: list[float], rel: float = REL, abs_s: float = ABS_S) -> bool:
    """The rule: candidate min > baseline max + max(rel × baseline max, abs_s)."""
    if not baseline or not candidate:
        return False
    top = max(baseline)
    return min(candidate) > top + max(rel * top, abs_s)


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "max": round(max(values), 3), "n": len(values)}


@dataclass
class Samples:
    """One side's samples of one scenario."""

    verdicts: list[str] = field(default_factory=list)
    figures: dict[str, list[float]] = field(default_factory=dict)  # metric or "phase:<name>" -> values
    lost: list[int] = field(default_factory=list)

    def add(self, verdict: Mapping[str, Any]) -> None:
        self.verdicts.append(str(verdict.get("verdict")))
        rto = verdict.get("rto_s") or {}
        for kind in ("write", "read"):
            if rto.get(kind) is not None:
                self.figures.setdefault(f"rto_{kind}_s", []).append(float(rto[kind]))
        self.lost.append(int((verdict.get("rpo") or {}).get("lost") or 0))
        worst: dict[str, float] = {}
        for fault in ((verdict.get("recovery_phases") or {}).get("faults") or []):
            for row in fault.get("phases") or []:
                worst[row["phase"]] = max(worst.get(row["phase"], 0.0), float(row["duration_s"]))
        for phase, value in worst.items():
            self.figures.setdefault(f"phase:{phase}", []).append(value)


def collect(dirs: Iterable[Path]) -> dict[str, Samples]:
    """Samples per scenario from every verdict.json under ``dirs`` (reports/<run>/<scenario>/)."""
    out: dict[str, Samples] = {}
    for d in dirs:
        for path in sorted(Path(d).glob("*/*/verdict.json")):
            verdict = json.loads(path.read_text())
            name = SAMPLE.sub("", str(verdict.get("scenario") or path.parent.name))
            out.setdefault(name, Samples()).add(verdict)
    return out


def _rank(word: str) -> int:
    return VERDICTS.index(word) if word in VERDICTS else len(VERDICTS)


def compare(baseline: Mapping[str, Samples], candidate: Mapping[str, Samples],
            rel: float = REL, abs_s: float = ABS_S) -> dict[str, Any]:
    """Per scenario: every figure of both sides, the change and whether it regressed."""
    scenarios: dict[str, Any] = {}
    for name in sorted(set(baseline) | set(candidate)):
        b, c = baseline.get(name), candidate.get(name)
        entry: dict[str, Any] = {"figures": {}, "regressions": [], "missing": None}
        if b is None or c is None:
            entry["missing"] = "baseline" if b is None else "candidate"
            entry["regressions"].append(f"no {entry['missing']} sample: nothing to compare")
            scenarios[name] = entry
            continue
        entry["verdicts"] = {"baseline": b.verdicts, "candidate": c.verdicts}
        for metric in sorted(set(b.figures) | set(c.figures), key=lambda m: (m.startswith("phase:"), m)):
            bv, cv = b.figures.get(metric, []), c.figures.get(metric, [])
            fig: dict[str, Any] = {"baseline": _spread(bv), "candidate": _spread(cv), "regressed": False}
            if bv and cv:
                fig["change_s"] = round(statistics.median(cv) - statistics.median(bv), 3)
                fig["allowed_s"] = round(max(bv) + max(rel * max(bv), abs_s), 3)
                fig["regressed"] = regressed(bv, cv, rel, abs_s)
            entry["figures"][metric] = fig
            if fig["regressed"]:
                what = (f"phase {metric.removeprefix('phase:')} ({SHORT.get(metric.removeprefix('phase:'), '?')})"
                        if metric.startswith("phase:") else metric.removesuffix("_s").replace("_", " "))
                entry["regressions"].append(
                    f"{what}: every sample over {fig['allowed_s']:.2f} s allowed (candidate min "
                    f"{min(cv):.2f}, median {statistics.median(cv):.2f} s; baseline max {max(bv):.2f} s)")
        if max(c.lost, default=0) > max(b.lost, default=0):
            entry["regressions"].append(f"acknowledged writes lost: {max(c.lost)} (baseline {max(b.lost)})")
        worst_b = max(b.verdicts, key=_rank, default="pass")
        worst_c = max(c.verdicts, key=_rank, default="pass")
        entry["worst"] = {"baseline": worst_b, "candidate": worst_c}
        if _rank(worst_c) > _rank(worst_b) and _rank(worst_c) > _rank("waived"):
            entry["regressions"].append(f"verdict {worst_c} (baseline {worst_b})")
        phases = [m.removeprefix("phase:") for m, f in entry["figures"].items()
                  if m.startswith("phase:") and f["regressed"]]
        entry["regressed_phases"] = phases
        scenarios[name] = entry
    flagged = sorted(n for n, e in scenarios.items() if e["regressions"])
    return {"rule": f"candidate min > baseline max + max({rel:.0%} of it, {abs_s:g} s)",
            "scenarios": scenarios, "regressions": flagged}


def _fmt(x: dict[str, float] | None) -> str:
    return "—" if x is None else f"{x['min']:.2f} / {x['median']:.2f} / {x['max']:.2f}"


def write_report(result: dict[str, Any], out: Path) -> Path:
    """gate.json and gate.md (the comparison a reviewer reads in the pull request)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "gate.json").write_text(json.dumps(result, indent=2, default=str))
    headline = ("REGRESSION" if result["regressions"] else "no regression" if result["scenarios"]
                else "NOTHING COMPARED: no scenario sample ran on either side (see the output above)")
    lines = [f"# pgchaos gate: {result.get('candidate')} against {result.get('baseline')}", "",
             f"**{headline}**"
             + (f" in {', '.join(result['regressions'])}" if result["regressions"] else "")
             + f"; {result.get('samples', '?')} sample(s) each, interleaved; rule: {result['rule']}.", ""]
    for name, e in result["scenarios"].items():
        lines += [f"## {name}", ""]
        if e.get("missing"):
            lines += [f"- {e['regressions'][0]}", ""]
            continue
        lines += [f"verdicts: baseline {', '.join(e['verdicts']['baseline'])}; candidate "
                  f"{', '.join(e['verdicts']['candidate'])}", "",
                  "| figure | baseline min / median / max | candidate min / median / max | change | |",
                  "|---|---|---|---|---|"]
        for metric, f in e["figures"].items():
            change = f.get("change_s")
            lines.append(f"| {metric} | {_fmt(f['baseline'])} | {_fmt(f['candidate'])} | "
                         f"{'—' if change is None else f'{change:+.2f} s'} | "
                         f"{'**regressed**' if f['regressed'] else ''} |")
        lines += [""] + [f"- **{r}**" for r in e["regressions"]] + [""]
    path = out / "gate.md"
    path.write_text("\n".join(lines))
    return path


@dataclass(frozen=True)
class Side:
    """One side of the gate: a label, a variant or manifest, and its environment."""

    label: str
    variant: str | None = None
    manifest: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def stack_args(self) -> list[str]:
        out = [] if self.variant is None else ["--pgchaos-variant", self.variant]
        return out + ([] if self.manifest is None else ["--pgchaos-manifest", str(self.manifest)])

    def up_args(self) -> list[str]:
        out = [] if self.variant is None else ["--variant", self.variant]
        return out + ([] if self.manifest is None else ["--manifest", str(self.manifest)])


def side(spec: str | None, label: str, env: Mapping[str, str]) -> Side:
    """A side from the command line: None or "reference" (the reference config), a
    manifest file, or a variant name."""
    if spec in (None, "", "reference"):
        return Side(label, env=env)
    path = Path(spec)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise PgchaosError(f"{spec}: no such manifest file")
        return Side(label, manifest=path.resolve(), env=env)
    from harness.stack.spec import variants

    if spec not in variants():
        raise PgchaosError(f"unknown variant {spec!r}; valid: {', '.join(variants())} "
                           "(or a manifest file, or 'reference')")
    return Side(label, variant=spec, env=env)


PytestRunner = Callable[[list[str], list[str], Mapping[str, str]], int]


def _cli(args: list[str], env: Mapping[str, str]) -> int:
    return subprocess.call([sys.executable, "-m", "harness.cli", *args], env={**os.environ, **env})


def run_gate(candidate: Side, baseline: Side, repeat: int, select: list[str], run_pytest: PytestRunner,
             reports_dir: Path, *, rel: float = REL, abs_s: float = ABS_S,
             say: Callable[[str], None] = print, up: Callable[[list[str], Mapping[str, str]], int] = _cli
             ) -> int:
    """Bring both stacks up (at once), run ``repeat`` interleaved samples of the selected scenarios
    on each, compare, write the report; remove both stacks whatever happens. Exit status:
    1 on a regression or a failing candidate verdict, else the candidate's verdicts'."""
    if repeat < 1:
        raise PgchaosError(f"--repeat must be at least 1, got {repeat}")
    same = (candidate.variant, candidate.manifest) == (baseline.variant, baseline.manifest)
    sides = [baseline] if same else [baseline, candidate]
    base = reports_dir / f"gate-{time.strftime('%Y%m%d-%H%M%S')}"
    dirs: dict[str, list[Path]] = {baseline.label: [], candidate.label: []}
    started = time.monotonic()
    ours: list[Side] = []  # only stacks this gate brought up are removed
    try:
        # both stacks come up (and go down) at once: each has its ports and state folder
        say(f"== {' and '.join(s.label for s in sides)}: bringing the stack{'s' if len(sides) > 1 else ''} up")
        with ThreadPoolExecutor(max_workers=len(sides)) as pool:
            codes = list(pool.map(lambda s: up(["up", *s.up_args()], s.env), sides))
        ours += [s for s, code in zip(sides, codes, strict=True) if code == 0]
        refused = [s for s, code in zip(sides, codes, strict=True) if code != 0]
        if refused:
            raise PgchaosError("; ".join(f"{s.label}: `pgchaos up {' '.join(s.up_args())}` failed"
                                         for s in refused))
        for i in range(1, repeat + 1):
            for s in (baseline, candidate):
                d = base / s.label / f"sample-{i}"
                dirs[s.label].append(d)
                say(f"== sample {i}/{repeat} on {s.label}")
                run_pytest(["scenarios"], ["--pgchaos-reports-dir", str(d), *s.stack_args(), *select],
                           sides[0].env if same else s.env)
    finally:
        if ours:
            with ThreadPoolExecutor(max_workers=len(ours)) as pool:
                list(pool.map(lambda s: up(["down"], s.env), ours))
    result = compare(collect(dirs[baseline.label]), collect(dirs[candidate.label]), rel, abs_s)
    result.update({"baseline": baseline.label, "candidate": candidate.label, "samples": repeat,
                   "wall_s": round(time.monotonic() - started, 1)})
    path = write_report(result, base)
    say(path.read_text())
    say(f"gate report: {path} (and gate.json); {result['wall_s']:.0f} s")
    words = [w for e in result["scenarios"].values() for w in (e.get("verdicts") or {}).get("candidate", [])]
    if result["regressions"] or not words:
        return EXIT_FAIL
    return exit_status([w for w in words if w in VERDICTS and w != "skipped"] or ["error"])
