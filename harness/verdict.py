"""The verdict of a run: every checker over one history, judged against a target row.

:func:`check_file` produces the ``pgchaos check`` JSON document;
:func:`exit_code` maps it to the command's exit status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Final, TypedDict

from harness.checkers import UNKNOWN, Checker, availability, check_safe, rpo, rto
from harness.checkers.after_recovery import after_recovery
from harness.checkers.atomicity import ATOMICITY_FS, atomicity
from harness.checkers.detection import detection
from harness.checkers.fault_effect import fault_effect
from harness.checkers.phases import PHASE_FS, SHORT, phases
from harness.checkers.phases import explain as explain_phases
from harness.checkers.rto import DEFAULT_STABLE_S
from harness.checkers.runbook_steps import runbook_steps, step_windows
from harness.checkers.split_brain import split_brain
from harness.history import MONITOR, Op, gc_paused, read_history
from harness.targets import Target, Waiver, load_targets

# Verdict words, best to worst. "marginal": every target met, but some RTO within the
# margin of its bound; "unjudged": nothing failed, but no RTO/RPO target judged the run
# (no target row, or no fault to measure against it); "error": the scenario raised
# before it could be judged (set by the runner, never by the checkers).
VERDICTS: Final = ("pass", "marginal", "waived", "unjudged", "unknown", "fail", "error")
PASSING: Final = frozenset({"pass", "marginal", "waived"})
FAILING: Final = frozenset({"fail", "unknown", "error"})
# exit status of `pgchaos check` / `run` / `certify` / `report` / `gate`, by worst verdict
EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_MARGINAL, EXIT_UNJUDGED = 0, 1, 2, 3, 4
DEFAULT_MARGIN: Final = 0.15
KINDS: Final = ("write", "read")
_SHOWN_KEYS: Final = 10


class FindingDoc(TypedDict):
    """One finding as written: a stable code, how it weighs, its text."""

    code: str
    severity: str
    text: str


class Verdict(TypedDict, total=False):
    """The verdict document (`pgchaos check` output, each scenario's `verdict.json`): what
    :func:`check_history` writes, plus what a scenario run adds. Keys are only ever added."""

    # judged from the history (check_history)
    valid: bool  # pass or marginal
    verdict: str  # one of VERDICTS
    rto_s: dict[str, float | None]  # write / read: the slowest fault's recovery
    rpo: dict[str, Any]  # lost, lost_keys, window_s, unknown, unexpected, ...
    faults: list[dict[str, Any]]  # per fault: name, target, at, rto_s per kind, ...
    target: dict[str, Any] | None  # the target row judged against
    waivers: list[dict[str, Any]]  # waivers applied, with what each covers
    reasons: list[str]  # what weighs on the verdict, worst first
    notes: list[str]
    findings: list[FindingDoc]  # every reason and note with its code (readers decide from codes)
    margins: list[dict[str, Any]]
    margin: float
    judged: dict[str, Any]
    counts: dict[str, Any]
    availability: dict[str, Any]
    checkers: dict[str, dict[str, Any]]
    scenario_checks: dict[str, dict[str, Any]]
    atomicity: dict[str, Any] | None
    fault_effect: dict[str, Any]
    runbook_steps: list[dict[str, Any]] | None
    recovery_phases: dict[str, Any] | None
    detection: dict[str, Any] | None
    ops: int
    stable_s: float
    gap_s: float | None
    probe_period_s: float | None
    history: str
    # added by a scenario run (harness.scenario)
    derived_bounds: list[dict[str, Any]]
    scenario: str
    wall_s: float
    steady_state: dict[str, bool | None]
    figures: dict[str, Any]
    log_alerts: list[dict[str, Any]]
    phases: dict[str, Any]
    probe: dict[str, Any]


def is_passing(verdict: str | None, *, marginal_fails: bool = False) -> bool:
    """The one definition of a passing verdict (pass, waived; marginal unless told otherwise)."""
    if verdict == "marginal":
        return not marginal_fails
    return verdict in PASSING


def exit_status(verdicts: Sequence[str | None], *, marginal_fails: bool = False) -> int:
    """The exit status for a set of verdicts: 1 when any fails (fail, unknown, error, or a
    word it does not know) or when there is none; else 4 when any is unjudged; else 3
    when any is marginal (1 with ``marginal_fails``); else 0."""
    words = list(verdicts)
    if not words or any(v not in VERDICTS or v in FAILING for v in words):
        return EXIT_FAIL
    if "unjudged" in words:
        return EXIT_UNJUDGED
    if "marginal" in words:
        return EXIT_FAIL if marginal_fails else EXIT_MARGINAL
    return EXIT_PASS


def _fmt_s(x: float) -> str:
    return f"{x:.3f} s"


def _keys(keys: Sequence[Any]) -> str:
    shown = ", ".join(map(str, keys[:_SHOWN_KEYS]))
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > _SHOWN_KEYS else "")


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason or note of a verdict: a stable ``code``, how it weighs, and its text.

    ``severity``: fail, unknown, waived, unjudged, marginal, error or note. Readers
    (``pgchaos report``, the gate) decide from codes, never from the wording.
    """

    code: str
    severity: str
    text: str

    def to_dict(self) -> FindingDoc:
        return {"code": self.code, "severity": self.severity, "text": self.text}


@dataclass
class _Judgement:
    findings: list[Finding] = field(default_factory=list)
    applied: dict[int, dict[str, Any]] = field(default_factory=dict)
    margins: list[dict[str, Any]] = field(default_factory=list)
    judged: dict[str, Any] = field(default_factory=dict)

    def add(self, severity: str, code: str, text: str) -> None:
        self.findings.append(Finding(code, severity, text))

    def fail(self, code: str, text: str) -> None:
        self.add("fail", code, text)

    def unknown(self, code: str, text: str) -> None:
        self.add("unknown", code, text)

    def note(self, code: str, text: str) -> None:
        self.add("note", code, text)

    def waive(self, waiver: Waiver, pos: int, cover: dict[str, Any]) -> None:
        entry = self.applied.setdefault(pos, {**waiver.to_dict(), "covers": []})
        entry["covers"].append(cover)

    def of(self, *severities: str) -> list[Finding]:
        return [f for f in self.findings if f.severity in severities]

    @property
    def verdict(self) -> str:
        for severity, word in (("error", "error"), ("fail", "fail"), ("unknown", "unknown"),
                               ("unjudged", "unjudged"), ("waived", "waived"), ("marginal", "marginal")):
            if self.of(severity):
                return word
        return "pass"

    @property
    def reasons(self) -> list[str]:
        """Every finding that weighs on the verdict, worst first (notes excluded)."""
        order = ("error", "fail", "waived", "unknown", "unjudged", "marginal")
        return [f.text for sev in order for f in self.of(sev)]


def _judge_rto(
    res: dict[str, Any], target: Target | None, waivers: Sequence[Waiver], j: _Judgement,
    margin: float,
) -> None:
    if "faults" not in res:
        j.unknown("rto-unknown", f"RTO could not be judged: {res.get('error', 'no result')}")
        return
    measured: list[str] = []
    if not res["faults"]:
        j.judged["rto"] = "no fault in the history"
        if target is not None:
            j.add("unjudged", "no-fault", f"no fault was injected: the RTO target of {target.row} "
                  "was not judged")
        return
    for fault in res["faults"]:
        name = f"fault #{fault['index']} {fault['f']!r} on {fault['target'] or '?'}"
        for kind in KINDS:
            value = fault["rto_s"].get(kind)
            if kind in fault.get("unobserved", ()):
                j.note("rto-absent", f"{name}: no {kind} in the history; {kind} RTO not measured")
            elif kind in fault.get("unconfirmed", ()):
                j.unknown(
                    "rto-unconfirmed",
                    f"{name}: {kind} recovery not confirmed: no stable stretch of ok {kind}s "
                    f"after it (the last {kind} was ok, but {kind}s did not keep succeeding)")
            elif value is None:
                j.fail("rto-unrecovered", f"{name}: {kind}s never recovered (nothing of {kind} "
                       "succeeded for good after it, or one was still waiting at the end)")
            elif target is None:
                measured.append(f"{kind} {_fmt_s(value)} after {name}")
            elif value > target.rto_s:
                _judge_over_target(name, fault, kind, value, target, waivers, j)
            else:
                _margin(name, fault, kind, value, target.rto_s, "target", margin, j)
    if all(set(KINDS) <= set(f.get("unobserved", ())) for f in res["faults"]):
        j.judged["rto"] = "not measured: no write or read in the history"
        j.add("unjudged", "no-traffic", "no write or read in the history: no RTO was measured"
              + (f", the target of {target.row} was not judged" if target is not None else ""))
        return
    if target is None:
        j.judged["rto"] = "measured, not judged: no target row"
        if measured:
            j.add("unjudged", "no-target", "no target row: RTO " + "; ".join(measured)
                  + " measured but not judged (give a target row: --target ROW)")
    else:
        j.judged["rto"] = f"against {target.row} ({_fmt_s(target.rto_s)})"


def _margin(name: str, fault: dict[str, Any], kind: str, value: float, bound: float, against: str,
            margin: float, j: _Judgement) -> None:
    """Record how close ``value`` came to ``bound``; within ``margin`` of a target: marginal."""
    ratio = value / bound if bound > 0 else None
    entry = {"fault": fault["index"], "f": fault["f"], "kind": kind, "measured_s": round(value, 3),
             "bound_s": bound, "against": against, "ratio": None if ratio is None else round(ratio, 3),
             "marginal": ratio is not None and ratio > 1.0 - margin}
    j.margins.append(entry)
    if entry["marginal"] and against == "target":
        j.add("marginal", "rto-marginal",
              f"{name}: {kind} RTO {_fmt_s(value)} is {ratio:.0%} of its bound {_fmt_s(bound)} "
              f"(within the {margin:.0%} margin)")


def _judge_over_target(
    name: str,
    fault: dict[str, Any],
    kind: str,
    value: float,
    target: Target,
    waivers: Sequence[Waiver],
    j: _Judgement,
) -> None:
    text = f"{name}: {kind} RTO {_fmt_s(value)} > target {_fmt_s(target.rto_s)} ({target.row})"
    for pos, w in enumerate(waivers):
        if w.covers(target.row, fault["f"], "rto_s", value):
            how = f": {w.derivation}" if w.derivation else ""
            j.add("waived", "rto-waived", f"{text}; waived (bound {_fmt_s(w.bound)}{how}, see 'waivers')")
            cover = {"fault": fault["index"], "f": fault["f"], "kind": kind, "measured": value}
            j.waive(w, pos, cover)
            _margin(name, fault, kind, value, w.bound, "waiver", 0.0, j)
            return
    past = [
        w for w in waivers if w.row == target.row and fault["f"] in w.faults and w.metric == "rto_s"
    ]
    if past:
        top = max(past, key=lambda w: w.bound)
        text += f"; past the waiver bound {_fmt_s(top.bound)}" + (f" ({top.derivation})" if top.derivation else "")
    j.fail("rto-over-target", text)


_EXPLAINED: Final = frozenset({"rto-over-target", "rto-marginal", "rto-waived", "rto-unrecovered"})


def _explain_by_phase(result: dict[str, Any], j: _Judgement) -> None:
    """A failing, marginal or waived RTO names its fault's slowest phase and the settings
    that govern it; the whole explanation is a note either way."""
    slowest = {f["fault"]: f for f in result["faults"] if f.get("slowest")}
    for k, finding in enumerate(j.findings):
        if finding.code not in _EXPLAINED or not finding.text.startswith("fault #"):
            continue
        index = finding.text.removeprefix("fault #").split(" ", 1)[0]
        f = slowest.get(int(index)) if index.isdigit() else None
        if f is None:
            continue
        row = next(r for r in f["phases"] if r["phase"] == f["slowest"])
        j.findings[k] = Finding(finding.code, finding.severity, f"{finding.text}; slowest phase: "
                                f"{f['slowest']} {row['duration_s']:.1f} s ({SHORT[f['slowest']]})")
    j.note("phases", explain_phases(result))


def _judge_rpo(
    res: dict[str, Any], target: Target | None, backup_age_s: float | None, j: _Judgement
) -> None:
    if res["valid"] == UNKNOWN:
        j.unknown("rpo-unknown", f"RPO could not be judged: {res.get('error', 'no result')}")
        j.judged["rpo"] = "not judged: " + str(res.get("error", "no result"))
        return
    j.judged["rpo"] = (f"against {target.row} (loss window {_fmt_s(target.rpo_s)})"
                       if target is not None and target.rpo_s > 0 else
                       "no acknowledged write may be lost" + ("" if target is not None else " (no target row)"))
    lost, window = res["lost"], res["window_s"]
    loss_allowed = target is not None and target.rpo_s > 0
    if lost and not loss_allowed:
        j.fail("rpo-lost", f"{lost} acknowledged write(s) lost: keys {_keys(res['lost_keys'])}")
    if res["unexpected"]:
        j.fail(
            "rpo-unexpected", f"{res['unexpected']} unexpected key(s) read (never written, or write failed): "
            f"keys {_keys(res['unexpected_keys'])}"
        )
    if target is not None and target.rpo_s > 0:
        if window > target.rpo_s:
            j.fail(
                "rpo-window", f"loss window {_fmt_s(window)} > target RPO {_fmt_s(target.rpo_s)} ({target.row})"
            )
        if backup_age_s is not None and backup_age_s > target.rpo_s:
            j.fail(
                "rpo-backup-age", f"backup age {_fmt_s(backup_age_s)} > target RPO {_fmt_s(target.rpo_s)} "
                f"({target.row})"
            )
    if res.get("late"):
        j.note(
            "rpo-late", f"{res['late']} write(s) acknowledged while the final read ran and absent from it; "
            "not counted lost"
        )


@dataclass(frozen=True)
class CheckContext:
    """What a built-in checker may be given besides the ops: the run's options, the target
    row, and the results of the checkers before it."""

    ops: Sequence[Op]
    stable_s: float
    gap_s: float | None
    target: Target | None
    results: Mapping[str, dict[str, Any]]

    @cached_property
    def steps(self) -> list[tuple[float, float]]:
        return [(w.begin, w.end) for w in step_windows(self.ops)]


def _after_recovery(ops: Sequence[Op], *, rto_result: dict[str, Any],
                    skip_windows: list[tuple[float, float]]) -> dict[str, Any]:
    if "faults" not in rto_result:
        return {"valid": UNKNOWN, "error": "no RTO result to start from"}
    return after_recovery(ops, rto_result=rto_result, skip_windows=skip_windows)


@dataclass(frozen=True)
class BuiltinCheck:
    """One checker of the pipeline: when it applies to a history, and what it is given."""

    name: str
    checker: Callable[..., dict[str, Any]]
    applies: Callable[[CheckContext], bool] = lambda ctx: True
    options: Callable[[CheckContext], dict[str, Any]] = lambda ctx: {}
    worded: bool = True  # the verdict words its reasons itself; else judged as a check (_judge_check)


# The pipeline every history goes through, in this order; scenario checks come after it.
# Adding a built-in checker is one entry here (and, when `worded`, its wording below).
PIPELINE: Final[tuple[BuiltinCheck, ...]] = (
    BuiltinCheck("rto", rto, options=lambda c: {"stable_s": c.stable_s, "gap_s": c.gap_s}),
    BuiltinCheck("rpo", rpo),
    BuiltinCheck("availability", availability, options=lambda c: {"gap_s": c.gap_s}),
    BuiltinCheck("fault-effect", fault_effect),
    BuiltinCheck("runbook-steps", runbook_steps, applies=lambda c: bool(c.steps)),
    BuiltinCheck("after-recovery", _after_recovery, worded=False,
                 options=lambda c: {"rto_result": c.results["rto"], "skip_windows": c.steps}),
    BuiltinCheck("split-brain", split_brain, worded=False,
                 applies=lambda c: any(op.f == "writable" for op in c.ops)),
    BuiltinCheck("detection", detection, worded=False,
                 applies=lambda c: any(op.process == MONITOR and op.f == "watch" for op in c.ops)),
    # explains and is never judged: its "unknown" (no samples) weighs nothing
    BuiltinCheck("phases", phases, applies=lambda c: any(op.f in PHASE_FS for op in c.ops)),
    BuiltinCheck("atomicity", atomicity, applies=lambda c: any(op.f in ATOMICITY_FS for op in c.ops),
                 options=lambda c: {
                     "prepared_bound_s": None if c.target is None else c.target.prepared_xacts_s,
                     "snapshot_reads": c.target is not None and c.target.snapshot_reads,
                     "loss_allowed": c.target is not None and c.target.rpo_s > 0}),
)
BUILTIN_CHECKS: Final = tuple(c.name for c in PIPELINE)
# Results whose reasons the verdict words itself; any other check is judged by _judge_check.
_OWN_WORDING: Final = frozenset(c.name for c in PIPELINE if c.worded)


def run_checks(
    ops: Sequence[Op],
    *,
    stable_s: float = DEFAULT_STABLE_S,
    gap_s: float | None = None,
    checks: Mapping[str, Checker] | None = None,
    recorded: Mapping[str, dict[str, Any]] | None = None,
    target: Target | None = None,
) -> dict[str, dict[str, Any]]:
    """Every checker over ``ops``, each made safe (a crash is "unknown"): Jepsen's compose.

    The built-in checkers (:data:`PIPELINE`, each where it applies: split-brain only
    when the history has ``writable`` samples, detection only when alerts were
    watched, atomicity only when it has transfers, paired inserts or
    prepared-transaction samples, judged with ``target``'s ``prepared_xacts_s`` and
    ``snapshot_reads``), then ``checks`` (scenario checks registered with
    ``ScenarioRun.add_check``; a name of a built-in replaces it), then
    ``recorded``: results of scenario checks that cannot be re-run from the history
    (closures of a finished run), applied as recorded and marked ``"source": "recorded"``.
    """
    results: dict[str, dict[str, Any]] = {}
    with gc_paused():
        for check in PIPELINE:
            ctx = CheckContext(ops, stable_s, gap_s, target, results)
            if check.applies(ctx):
                results[check.name] = check_safe(check.checker, ops, **check.options(ctx))
    for name, checker in (checks or {}).items():
        if name == "valid":
            raise ValueError("a check cannot be named 'valid'")
        results[name] = {**check_safe(checker, ops), "source": "scenario"}
    for name, res in (recorded or {}).items():
        if name not in results and isinstance(res, dict):
            valid = res.get("valid")
            results[name] = {**res, "valid": valid if valid in (True, False) else UNKNOWN,
                             "source": "recorded"}
    return results


def _judge_check(name: str, res: dict[str, Any], j: _Judgement) -> None:
    if res["valid"] is False:
        reason = res.get("reason")
        j.fail(f"check:{name}", str(reason) if name == "after-recovery" and reason
               else f"{name}: {reason or res}")
    elif res["valid"] is not True:
        j.unknown(f"check-unknown:{name}", f"{name} could not judge: {res.get('error') or res.get('reason')}")


def _judge_runbook_steps(steps: Sequence[dict[str, Any]], target: Target | None, j: _Judgement) -> None:
    """Client failures during a runbook step are that step's: its unavailability is judged
    against the RTO of the row the step names, else the scenario's (noted when within it,
    or when there is no row)."""
    scenario_row = None if target is None else (target.row, target.rto_s)
    for step in steps:
        if not step["failures"]:
            continue
        row = (step["row"], float(step["rto_s"])) if step.get("row") and step.get("rto_s") else scenario_row
        for kind, value in step["unavailable_s"].items():
            text = (f"runbook step {step['step']!r}: {step['failures']} write/read failure(s) while it ran "
                    f"(first: {step.get('first_error')}); {kind}s unavailable "
                    + ("until the end" if value is None else _fmt_s(value)))
            if row is not None and (value is None or value > row[1]):
                j.fail("runbook-step-outage", f"{text} > target {_fmt_s(row[1])} ({row[0]})")
            else:
                j.note("runbook-step-failures", text + (f", within {row[0]}'s {_fmt_s(row[1])}"
                                                        if row is not None else ""))


def _judge_by_own_checks(results: Mapping[str, dict[str, Any]], j: _Judgement) -> None:
    """No target row and no fault: only the scenario's own checks can judge the run."""
    own = sorted(name for name, res in results.items()
                 if res.get("source") in ("scenario", "recorded") and res.get("valid") is True)
    if own:
        j.judged["checks"] = "judged by the scenario's own checks: " + ", ".join(own)
    else:
        j.add("unjudged", "nothing-judged", "no target row, no fault and no scenario check: "
              "nothing was judged")


def _rtos(by_kind: dict[str, float | None]) -> str:
    return ", ".join(f"{kind} {'never' if v is None else _fmt_s(v)}" for kind, v in by_kind.items())


def _judge_atomicity(res: dict[str, Any], j: _Judgement) -> None:
    """The atomicity checker's findings as they are (codes ``atomicity-*``, ``read-skew``,
    ``prepared-*``), and a note with the counts."""
    if "findings" not in res:
        j.unknown("check-unknown:atomicity", f"atomicity could not judge: {res.get('error')}")
        return
    for f in res["findings"]:
        j.add(f["severity"], f["code"], f["text"])
    t, p = res.get("transfers"), res.get("paired")
    if t is not None and p is not None:
        j.note("atomicity", f"transfers: {t['acknowledged']} acknowledged, {t['unknown']} unknown "
               f"({t['unknown_applied']} of them applied), {t['failed']} failed, {t['half_applied']} "
               f"half-applied; paired inserts: {p['acknowledged']} acknowledged, {p['unknown']} unknown, "
               f"{p['half_applied']} half present; total {t['total_final']} (invariant {t['total_initial']})"
               + "".join(f"; committing again {_rtos(v)} after fault #{k}"
                         for k, v in (res.get("rto_s") or {}).items()))


def _judge_fault_effect(res: dict[str, Any], j: _Judgement) -> None:
    if res["valid"] is True:
        return
    if "reasons" in res:
        for reason in res["reasons"]:
            j.unknown("fault-effect-unobserved", reason)
    else:
        j.unknown("check-unknown:fault-effect", f"fault-effect could not judge: {res.get('error')}")


def check_history(
    ops: Sequence[Op],
    target: Target | None = None,
    waivers: Sequence[Waiver] = (),
    *,
    stable_s: float = DEFAULT_STABLE_S,
    gap_s: float | None = None,
    backup_age_s: float | None = None,
    checks: Mapping[str, Checker] | None = None,
    recorded: Mapping[str, dict[str, Any]] | None = None,
    margin: float = DEFAULT_MARGIN,
) -> Verdict:
    """Run every checker over ``ops`` (:func:`run_checks`) and judge them, against ``target`` when given.

    ``verdict`` (see :data:`VERDICTS`): "pass" only when a target judged the
    run and every figure met it with more than ``margin`` to spare; "marginal"
    when some RTO came within ``margin`` of its target; "waived" when the only
    failures are RTO figures over target that a waiver for the row and fault
    covers within its bound (lost writes are never waived); "unjudged" when
    nothing failed but no target judged the RTO (no target row, or no fault);
    "unknown" when a checker cannot judge (no final read, a fault with no
    observation that it took effect, a recovery not confirmed, a crash);
    "fail" otherwise. ``valid`` is True for pass and marginal only.
    ``findings`` carries every reason and note with its code.
    """
    results = run_checks(ops, stable_s=stable_s, gap_s=gap_s, checks=checks, recorded=recorded, target=target)
    r_rto, r_rpo, r_av, r_fe = (results[k] for k in ("rto", "rpo", "availability", "fault-effect"))
    usable = [w for w in waivers if target is not None and w.row == target.row]

    j = _Judgement()
    _judge_rto(r_rto, target, usable, j, margin)
    _judge_rpo(r_rpo, target, backup_age_s, j)
    if r_av["valid"] == UNKNOWN:
        j.unknown("availability-unknown", f"availability could not be judged: {r_av.get('error')}")
    _judge_fault_effect(r_fe, j)
    if "atomicity" in results:
        _judge_atomicity(results["atomicity"], j)
    for name, res in results.items():
        if name not in _OWN_WORDING:
            _judge_check(name, res, j)
    if target is None and not r_rto.get("faults") and "faults" in r_rto:
        _judge_by_own_checks(results, j)

    r_det = results.get("detection")
    if r_det and r_det.get("unexpected_critical"):
        j.note("alerts-unexpected-critical", "critical alerts no expectation names: " + ", ".join(
            f"{n} (x{v['count']})" for n, v in sorted(r_det["unexpected_critical"].items())))

    r_ph = results.get("phases")
    if r_ph and r_ph.get("faults"):
        _explain_by_phase(r_ph, j)
    r_steps = results.get("runbook-steps")
    if r_steps and r_steps.get("steps"):
        _judge_runbook_steps(r_steps["steps"], target, j)

    rpo_out = {k: r_rpo.get(k) for k in ("lost", "lost_keys", "window_s", "unknown", "unexpected")}
    for extra in ("unexpected_keys", "late", "late_keys", "duplicates", "acknowledged"):
        if extra in r_rpo:
            rpo_out[extra] = r_rpo[extra]
    if backup_age_s is not None:
        rpo_out["backup_age_s"] = backup_age_s

    verdict = j.verdict
    checkers = {
        name: {k: v for k, v in res.items() if k in ("valid", "error", "reason", "source")}
        for name, res in results.items()
    }
    return {
        "valid": verdict in ("pass", "marginal"),  # waived is passing, not valid
        "verdict": verdict,
        "rto_s": r_rto.get("rto_s", {k: None for k in KINDS}),
        "rpo": rpo_out,
        "faults": r_rto.get("faults", []),
        "target": None if target is None else target.to_dict(),
        "waivers": list(j.applied.values()),
        "reasons": j.reasons,
        "notes": [f.text for f in j.of("note")],
        "findings": [f.to_dict() for f in j.findings],
        "margins": j.margins,
        "margin": margin,
        "judged": j.judged,
        "counts": r_av.get("counts", {}),
        "availability": {k: r_av[k] for k in ("windows", "longest") if k in r_av},
        "checkers": checkers,
        "scenario_checks": {k: v for k, v in results.items() if k not in _OWN_WORDING},
        "atomicity": None if "atomicity" not in results else {
            k: v for k, v in results["atomicity"].items() if k not in ("findings", "reason")},
        "fault_effect": r_fe,
        "runbook_steps": (results.get("runbook-steps") or {}).get("steps"),
        "recovery_phases": None if not r_ph else {k: r_ph.get(k) for k in ("valid", "faults", "error")
                                                  if k in r_ph},
        "detection": None if not r_det else {k: r_det.get(k) for k in (
            "detect_s", "expectations", "unexpected_critical", "firing_at_start", "firing_at_end", "feed")},
        "ops": len(ops),
        "stable_s": stable_s,
        "gap_s": r_rto.get("gap_s"),
        "probe_period_s": r_rto.get("probe_period_s"),
    }


def check_file(
    path: str | Path,
    target_row: str | None = None,
    targets_path: Path | None = None,
    *,
    stable_s: float = DEFAULT_STABLE_S,
    gap_s: float | None = None,
    backup_age_s: float | None = None,
    margin: float = DEFAULT_MARGIN,
) -> Verdict:
    """Check the history at ``path``, judged against ``target_row`` of the targets table.

    Raises HistoryFormatError for a malformed history, TargetsError for a
    malformed table or an unknown row (checked before the history is read).
    """
    target: Target | None = None
    waivers: Sequence[Waiver] = ()
    if target_row is not None:
        targets = load_targets(targets_path)
        target = targets.row(target_row)
        waivers = targets.waivers_for(target_row)
    ops = read_history(path)
    result = check_history(ops, target, waivers, stable_s=stable_s, gap_s=gap_s,
                           backup_age_s=backup_age_s, margin=margin)
    result["history"] = str(path)
    return result


def exit_code(result: Verdict, *, marginal_fails: bool = False) -> int:
    """0 pass or waived; 3 marginal (1 with ``marginal_fails``); 4 unjudged; 1 fail,
    unknown or error (see :func:`exit_status`)."""
    return exit_status([result.get("verdict")], marginal_fails=marginal_fails)


def force_verdict(result: Verdict, severity: str, findings: Sequence[Finding]) -> Verdict:
    """Put findings from outside the history (an error, the steady state, the log gate) in
    front of ``result``'s and set its verdict to ``severity`` ("fail" or "error")."""
    texts = [f.text for f in findings]
    result["reasons"] = texts + [r for r in result.get("reasons", []) if r not in texts]
    result["findings"] = [f.to_dict() for f in findings] + list(result.get("findings", []))
    result["verdict"], result["valid"] = severity, False
    return result
