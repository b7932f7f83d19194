"""The verdict of a run: every checker over one history, judged against a target row.

:func:`check_file` produces the ``pgchaos check`` JSON document;
:func:`exit_code` maps it to the command's exit status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from harness.checkers import UNKNOWN, Checker, availability, check_safe, rpo, rto
from harness.checkers.after_recovery import after_recovery
from harness.checkers.detection import detection
from harness.checkers.fault_effect import fault_effect
from harness.checkers.rto import DEFAULT_STABLE_S
from harness.checkers.split_brain import split_brain
from harness.history import MONITOR, Op, gc_paused, read_history
from harness.targets import Target, Waiver, load_targets

VERDICTS: Final = ("pass", "fail", "waived", "unknown")
KINDS: Final = ("write", "read")
_SHOWN_KEYS: Final = 10


def _fmt_s(x: float) -> str:
    return f"{x:.3f} s"


def _keys(keys: Sequence[Any]) -> str:
    shown = ", ".join(map(str, keys[:_SHOWN_KEYS]))
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > _SHOWN_KEYS else "")


@dataclass
class _Judgement:
    failures: list[str] = field(default_factory=list)
    waived: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    applied: dict[int, dict[str, Any]] = field(default_factory=dict)

    def waive(self, waiver: Waiver, pos: int, cover: dict[str, Any]) -> None:
        entry = self.applied.setdefault(pos, {**waiver.to_dict(), "covers": []})
        entry["covers"].append(cover)

    @property
    def verdict(self) -> str:
        if self.failures:
            return "fail"
        if self.unknown:
            return "unknown"
        return "waived" if self.waived else "pass"


def _judge_rto(
    res: dict[str, Any], target: Target | None, waivers: Sequence[Waiver], j: _Judgement
) -> None:
    if "faults" not in res:
        j.unknown.append(f"RTO could not be judged: {res.get('error', 'no result')}")
        return
    for fault in res["faults"]:
        name = f"fault #{fault['index']} {fault['f']!r} on {fault['target'] or '?'}"
        for kind in KINDS:
            value = fault["rto_s"].get(kind)
            if kind in fault.get("unobserved", ()):
                j.notes.append(f"{name}: no {kind} completed after it; {kind} RTO not measured")
            elif kind in fault.get("unconfirmed", ()):
                j.unknown.append(
                    f"{name}: {kind} recovery not confirmed: no stable stretch of ok {kind}s "
                    f"after it (the last {kind} was ok, but {kind}s did not keep succeeding)")
            elif value is None:
                j.failures.append(f"{name}: {kind}s never recovered")
            elif target is not None and value > target.rto_s:
                _judge_over_target(name, fault, kind, value, target, waivers, j)


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
            j.waived.append(f"{text}; waived (bound {_fmt_s(w.bound)}, see 'waivers')")
            cover = {"fault": fault["index"], "f": fault["f"], "kind": kind, "measured": value}
            j.waive(w, pos, cover)
            return
    past = [
        w for w in waivers if w.row == target.row and fault["f"] in w.faults and w.metric == "rto_s"
    ]
    if past:
        text += f"; past the waiver bound {_fmt_s(max(w.bound for w in past))}"
    j.failures.append(text)


def _judge_rpo(
    res: dict[str, Any], target: Target | None, backup_age_s: float | None, j: _Judgement
) -> None:
    if res["valid"] == UNKNOWN:
        j.unknown.append(f"RPO could not be judged: {res.get('error', 'no result')}")
        return
    lost, window = res["lost"], res["window_s"]
    loss_allowed = target is not None and target.rpo_s > 0
    if lost and not loss_allowed:
        j.failures.append(f"{lost} acknowledged write(s) lost: keys {_keys(res['lost_keys'])}")
    if res["unexpected"]:
        j.failures.append(
            f"{res['unexpected']} unexpected key(s) read (never written, or write failed): "
            f"keys {_keys(res['unexpected_keys'])}"
        )
    if target is not None and target.rpo_s > 0:
        if window > target.rpo_s:
            j.failures.append(
                f"loss window {_fmt_s(window)} > target RPO {_fmt_s(target.rpo_s)} ({target.row})"
            )
        if backup_age_s is not None and backup_age_s > target.rpo_s:
            j.failures.append(
                f"backup age {_fmt_s(backup_age_s)} > target RPO {_fmt_s(target.rpo_s)} "
                f"({target.row})"
            )
    if res.get("late"):
        j.notes.append(
            f"{res['late']} write(s) acknowledged while the final read ran and absent from it; "
            "not counted lost"
        )


# Checkers every history gets, in this order; scenario checks come after them.
BUILTIN_CHECKS: Final = ("rto", "rpo", "availability", "fault-effect", "after-recovery", "split-brain",
                          "detection")
# Results whose reasons the verdict words itself; any other check is judged by _judge_check.
_OWN_WORDING: Final = frozenset({"rto", "rpo", "availability", "fault-effect"})


def run_checks(
    ops: Sequence[Op],
    *,
    stable_s: float = DEFAULT_STABLE_S,
    gap_s: float | None = None,
    checks: Mapping[str, Checker] | None = None,
    recorded: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every checker over ``ops``, each made safe (a crash is "unknown"): Jepsen's compose.

    The built-in checkers (:data:`BUILTIN_CHECKS`; split-brain only when the
    history has ``writable`` samples, detection only when alerts were watched), then ``checks`` (scenario checks
    registered with ``ScenarioRun.add_check``; a name of a built-in replaces
    it), then ``recorded``: results of scenario checks that cannot be re-run
    from the history (closures of a finished run), applied as recorded and
    marked ``"source": "recorded"``.
    """
    with gc_paused():
        results: dict[str, dict[str, Any]] = {
            "rto": check_safe(rto, ops, stable_s=stable_s, gap_s=gap_s),
            "rpo": check_safe(rpo, ops),
            "availability": check_safe(availability, ops, gap_s=gap_s),
            "fault-effect": check_safe(fault_effect, ops),
        }
        if "faults" in results["rto"]:
            results["after-recovery"] = check_safe(after_recovery, ops, rto_result=results["rto"])
        else:
            results["after-recovery"] = {"valid": UNKNOWN, "error": "no RTO result to start from"}
        if any(op.f == "writable" for op in ops):
            results["split-brain"] = check_safe(split_brain, ops)
        if any(op.process == MONITOR and op.f == "watch" for op in ops):
            results["detection"] = check_safe(detection, ops)
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
        j.failures.append(res.get("reason") if name == "after-recovery" and res.get("reason")
                          else f"{name}: {res.get('reason') or res}")
    elif res["valid"] is not True:
        j.unknown.append(f"{name} could not judge: {res.get('error') or res.get('reason')}")


def _judge_fault_effect(res: dict[str, Any], j: _Judgement) -> None:
    if res["valid"] is True:
        return
    if "reasons" in res:
        j.unknown.extend(res["reasons"])
    else:
        j.unknown.append(f"fault-effect could not judge: {res.get('error')}")


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
) -> dict[str, Any]:
    """Run every checker over ``ops`` (:func:`run_checks`) and judge them, against ``target`` when given.

    ``valid`` is strict: True only for a clean pass. ``verdict`` is "waived"
    when the only failures are RTO figures over target that a waiver for the
    row and fault covers within its bound; lost writes are never waived. Any
    checker that cannot judge (no final read, a fault with no observation that
    it took effect, a recovery not confirmed by a stable stretch, a crash)
    makes it "unknown" unless something failed.
    """
    results = run_checks(ops, stable_s=stable_s, gap_s=gap_s, checks=checks, recorded=recorded)
    r_rto, r_rpo, r_av, r_fe = (results[k] for k in ("rto", "rpo", "availability", "fault-effect"))
    usable = [w for w in waivers if target is not None and w.row == target.row]

    j = _Judgement()
    _judge_rto(r_rto, target, usable, j)
    _judge_rpo(r_rpo, target, backup_age_s, j)
    if r_av["valid"] == UNKNOWN:
        j.unknown.append(f"availability could not be judged: {r_av.get('error')}")
    _judge_fault_effect(r_fe, j)
    for name, res in results.items():
        if name not in _OWN_WORDING:
            _judge_check(name, res, j)

    r_det = results.get("detection")
    if r_det and r_det.get("unexpected_critical"):
        j.notes.append("critical alerts no expectation names: " + ", ".join(
            f"{n} (x{v['count']})" for n, v in sorted(r_det["unexpected_critical"].items())))

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
        "valid": verdict == "pass",
        "verdict": verdict,
        "rto_s": r_rto.get("rto_s", {k: None for k in KINDS}),
        "rpo": rpo_out,
        "faults": r_rto.get("faults", []),
        "target": None if target is None else target.to_dict(),
        "waivers": list(j.applied.values()),
        "reasons": j.failures + j.waived + j.unknown,
        "notes": j.notes,
        "counts": r_av.get("counts", {}),
        "availability": {k: r_av[k] for k in ("windows", "longest") if k in r_av},
        "checkers": checkers,
        "scenario_checks": {k: v for k, v in results.items() if k not in _OWN_WORDING},
        "fault_effect": r_fe,
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
) -> dict[str, Any]:
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
                           backup_age_s=backup_age_s)
    result["history"] = str(path)
    return result


def exit_code(result: dict[str, Any]) -> int:
    """0 for a pass or a waived run; 1 for a fail or an unknown verdict."""
    return 0 if result.get("verdict") in ("pass", "waived") else 1
