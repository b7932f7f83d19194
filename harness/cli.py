"""The `pgchaos` command line: stack lifecycle, offline checks and game days."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from harness import assets, engines
from harness.errors import PgchaosError
from harness.stack.spec import PROFILES, StackSpec

Handler = Callable[[argparse.Namespace], int]
STACK_COMMANDS = ("up", "status", "run", "certify", "drill", "inject", "heal")


def _progress(msg: str) -> None:
    print(f"[pgchaos] {msg}", file=sys.stderr, flush=True)


def cmd_setup(args: argparse.Namespace) -> int:
    return subprocess.call(["bash", str(assets.compose_dir() / "scripts" / "setup-host.sh")])


def cmd_up(args: argparse.Namespace) -> int:
    from harness.stack import Stack
    from harness.stack.gc import collect
    from harness.stack.runs import own_runs

    spec = _spec(args, variant=args.variant)
    spec.validate()
    if spec.attach is not None:  # nothing to bring up: check the running stack and show it
        stack = Stack(spec, progress=_progress)
        stack.connect()
        return _print_status(stack, args.json)
    if own_runs():  # only the caller's own: another user's or folder's stack is none of theirs to remove
        raise PgchaosError(f"a stack of yours is already up from this folder ({', '.join(own_runs())}); "
                           "run `pgchaos down` first")
    stack = Stack(spec, detached=True, progress=_progress)
    t0 = time.monotonic()
    stack.preflight()  # bad input: one line, nothing created
    stack.docker  # noqa: B018 - no engine: one line, nothing created
    try:
        gc = collect()
        if gc.projects:
            _progress(str(gc))
        stack.start()
    except BaseException:
        from harness.session import stop_uninterrupted

        _progress("start failed; removing what was created")
        stop_uninterrupted(stack)
        raise
    _progress(f"up in {time.monotonic() - t0:.1f} s")
    return cmd_status(argparse.Namespace(json=args.json, run_id=stack.run_id))


def _spec(args: argparse.Namespace, variant: str | None = None) -> Any:
    from pathlib import Path

    from harness.stack import StackSpec

    manifest = getattr(args, "manifest", None)
    return StackSpec(profile=getattr(args, "profile", None) or "local", variant=variant,
                     manifest_path=Path(manifest).resolve() if manifest else None,
                     attach=getattr(args, "attach", None),
                     engine=getattr(args, "engine", None) or engines.DEFAULT_ENGINE)


def _stack(args: argparse.Namespace) -> Any:
    """The stack a command works on: `--manifest FILE --attach` names a running
    stack of the user's; otherwise the one `pgchaos up` started."""
    from harness.stack import Stack

    if getattr(args, "attach", None) is not None:
        stack = Stack(_spec(args), progress=_progress)
        stack.connect()
        return stack
    if getattr(args, "manifest", None):
        raise PgchaosError("--manifest without --attach names no running stack: use `pgchaos up --manifest "
                           "FILE` first, or add --attach for a stack you started")
    return Stack.attach(getattr(args, "run_id", None), progress=_progress)


def cmd_status(args: argparse.Namespace) -> int:
    if getattr(args, "all", False):
        return _print_all_runs(args.json)
    return _print_status(_stack(args), args.json)


def _print_all_runs(as_json: bool) -> int:
    """Every stack of `pgchaos up` in this state folder, whoever started it (no health check)."""
    from harness.stack.runs import describe_run, run_metas

    found = run_metas()
    if as_json:
        print(json.dumps([{"run_id": p.parent.name, **(meta or {"corrupt": True})} for p, meta in found],
                         indent=2, default=str))
    else:
        print("\n".join(describe_run(meta, p.parent.name) for p, meta in found) or "no pgchaos stack is up")
    return 0


def _print_status(stack: Any, as_json: bool) -> int:
    from harness.stack import steady_state

    state = steady_state(stack)
    doc = {"run_id": stack.run_id, "project": stack.project, **state.as_dict(), "alerts": _active_alerts(stack)}
    if as_json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print(f"stack {stack.project}: {'HEALTHY' if state.healthy else 'UNHEALTHY'}")
        print(f"leader: {doc['leader']}  replicas: "
              f"{', '.join(r['name'] + '(' + r['state'] + ')' for r in doc['replicas'])}")
        if doc["workers"]:  # a stack without worker groups has no line for them
            print(f"workers: {', '.join(w['name'] + ('' if w['up'] else ' DOWN') for w in doc['workers'])}")
        for check in state.checks:
            print(f"  {'ok ' if check.ok else 'BAD'} {check.name:20} {check.detail}")
        print("endpoints: " + "  ".join(f"{k}={v}" for k, v in doc["endpoints"].items()))
        alerts = doc["alerts"]
        if isinstance(alerts, str):
            print(f"alerts: {alerts}")
        else:
            print(f"alerts firing: {len(alerts)}")
            for a in alerts:
                labels = ", ".join(f"{k}={v}" for k, v in a["labels"].items())
                print(f"  {a['severity'] or '-':8} {a['alert']}: {a['summary']}  [{labels}]")
    return 0 if state.healthy else 1


def _active_alerts(stack: Any) -> list[dict[str, Any]] | str:
    """Alerts Alertmanager holds as firing, or why none can be listed."""
    from harness.alerts import active_alerts

    mon = stack.manifest.monitoring
    if mon is None or not mon.alertmanager:
        return "not available (the manifest names no Alertmanager)"
    try:
        url = f"http://{stack.endpoint(mon.alertmanager, mon.alertmanager_port)}"
        return [a.as_value() for a in active_alerts(url)]
    except PgchaosError as exc:
        return f"not available ({exc})"


def cmd_down(args: argparse.Namespace) -> int:
    from harness.stack import Stack

    stack = Stack.attach(args.run_id, progress=_progress)
    t0 = time.monotonic()
    stack.stop()
    _progress(f"{stack.project} removed in {time.monotonic() - t0:.1f} s")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from harness.stack.gc import collect

    print(collect(everything=args.all))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.verdict import check_file, exit_code

    if not 0 <= args.margin < 1:
        raise PgchaosError(f"--margin must be a fraction in [0, 1), got {args.margin}")
    targets = None if args.targets is None else Path(args.targets)
    result = check_file(args.history, target_row=args.target, targets_path=targets, margin=args.margin)
    print(json.dumps(result, indent=2))
    return exit_code(result, marginal_fails=args.marginal_fails)


def _detached(args: argparse.Namespace | None = None) -> Any:
    return _stack(args or argparse.Namespace())


def cmd_list(args: argparse.Namespace) -> int:
    from harness.gameday import DRILLS
    from harness.nemesis import CATALOGUE
    from harness.targets import load_targets

    targets = load_targets()
    applies = _scenarios_on(args)
    doc = {
        "faults": [{"name": f.name, "kind": f.kind, "description": f.description}
                   for f in CATALOGUE.values()],
        "targets": [t.to_dict() for t in targets.rows.values()],
        "waivers": [w.to_dict() for w in targets.waivers],
        "scenarios": scenario_names(),
        "drills": {name: d["guide"] for name, d in DRILLS.items()},
        **({"on_stack": applies} if applies is not None else {}),
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print("faults (pgchaos inject FAULT TARGET):")
    for f in doc["faults"]:
        print(f"  {f['name']:12} {f['kind']:6} {f['description']}")
    print("\ntargets (scenarios/targets.toml):")
    for t in doc["targets"]:
        print(f"  {t['row']:22} RTO {t['rto_s']:>7} s  RPO {t['rpo_s']:>6} s  ({t.get('source')})")
    for w in doc["waivers"]:
        print(f"  waiver: {w['row']} {w['faults']} {w['metric']} <= {w['bound']}: {w['reason']}")
    print("\nscenarios (pgchaos run NAME):" if applies is None else
          f"\nscenarios on {args.manifest}{f' (engine {args.engine})' if args.engine else ''}"
          f"{' (attached)' if args.attach is not None else ''} (pgchaos run NAME):")
    for name, about in doc["scenarios"].items():
        print(f"  {name:26} {about}")
        if applies is not None and applies[name]["lacks"]:
            print(f"  {'':26}   skipped here: the stack ({applies[name]['stack']}) lacks: "
                  f"{', '.join(applies[name]['lacks'])}")
    print("\ndrills (pgchaos drill NAME):")
    for name, guide in doc["drills"].items():
        print(f"  {name:22} {guide}")
    return 0


def _scenarios_on(args: argparse.Namespace) -> dict[str, dict[str, Any]] | None:
    """With --manifest: for each scenario, what the stack (in the mode asked) lacks for it."""
    from harness.stack.manifest import load_manifest, unmet
    from harness.stack.stack import mode_capabilities

    engine = getattr(args, "engine", None)
    profile = getattr(args, "profile", None)
    if not getattr(args, "manifest", None) and engine is None and profile is None:
        return None
    spec = StackSpec(profile=profile or "local", manifest_path=Path(args.manifest) if args.manifest else None,
                     engine=engine or engines.DEFAULT_ENGINE)
    eng = engines.engine(spec.engine)  # one line naming the valid ones
    if args.attach is not None and not eng.can_attach:
        attachable = [n for n in engines.names() if engines.engine(n).can_attach]
        raise PgchaosError(f"--attach works with --engine {' or '.join(attachable)} only")
    args.manifest = str(spec.manifest_file)
    manifest = load_manifest(spec.manifest_file)
    caps = mode_capabilities(manifest, attached=args.attach is not None, engine=spec.engine)
    return {name: {"stack": manifest.name, "requires": reqs, "lacks": unmet(reqs, caps)}
            for name, reqs in scenario_requirements().items()}


def scenario_requirements() -> dict[str, list[str]]:
    """Scenario modules under scenarios/: name -> what its `pytest.mark.requires(...)` marks ask."""
    import ast

    found = {}
    for path in sorted(assets.scenarios_dir().glob("test_*.py")):
        reqs: list[str] = []
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "requires"):
                reqs += [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        found[path.stem.removeprefix("test_")] = list(dict.fromkeys(reqs))
    return found


def scenario_names() -> dict[str, str]:
    """Scenario modules under scenarios/: name -> first line of their docstring."""
    import ast

    found = {}
    for path in sorted(assets.scenarios_dir().glob("test_*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        found[path.stem.removeprefix("test_")] = doc.strip().splitlines()[0] if doc else ""
    return found


def cmd_inject(args: argparse.Namespace) -> int:
    from harness.gameday import heal, inject, parse_params
    from harness.nemesis import Nemesis
    from harness.progress import spinner

    Nemesis.fault(args.fault)  # an unknown fault is named before any stack is looked for
    params = parse_params(args.param or [], args.fault)
    stack = _detached(args)
    t0 = time.monotonic()
    record = inject(stack, args.fault, args.target, params)  # returns once its effect was looked for
    out = {"injected": record}
    if args.duration is not None:
        with spinner(f"{args.fault} on {record['target']} for {args.duration:.0f} s"):
            time.sleep(max(0.0, args.duration - (time.monotonic() - t0)))
        out["healed"] = heal(stack, str(record["id"]))
    print(json.dumps(out) if args.json else
          f"injected #{record['id']}: {record['fault']} on {record['target']}"
          + _effect_text(record.get("effect"))
          + (" (healed)" if "healed" in out else f"; heal with: pgchaos heal {record['id']}{_same_stack(stack)}"))
    return 0


def _same_stack(stack: Any) -> str:
    """The options that make a later command target this very stack."""
    import shlex

    if stack.attached:
        engine = f" --engine {stack.spec.engine}" if stack.spec.engine != engines.DEFAULT_ENGINE else ""
        return f" --manifest {shlex.quote(str(stack.manifest.path))} --attach {shlex.quote(stack.project)}{engine}"
    return f" --run-id {stack.run_id}"


def cmd_heal(args: argparse.Namespace) -> int:
    from harness.gameday import heal

    if args.id is None and not args.all:
        raise PgchaosError("say which fault to heal (pgchaos heal ID) or --all")
    healed = heal(_detached(args), None if args.all else args.id)
    names = ", ".join("#{id} {fault} {target}".format(**r) for r in healed) or "nothing active"
    print(json.dumps({"healed": healed}) if args.json else
          f"healed: {names}" + ("; every container running, links clean, disks freed" if args.all else ""))
    return 0


def _effect_text(effect: dict[str, Any] | None) -> str:
    if not effect:
        return ""
    return f" ({'took effect' if effect['seen'] else 'NO EFFECT SEEN'}: {effect['evidence']})"


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C's default disposition, whatever the parent
    inherited (a background job of a non-interactive shell starts with SIGINT
    ignored, and Python then installs no KeyboardInterrupt handler)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _pytest(paths: list[str], extra: list[str]) -> int:
    """pytest in a child that gets Ctrl-C like a terminal would give it; on our own
    Ctrl-C we wait for its teardown (subprocess.call would SIGKILL it, leaving its stack).

    `paths` are relative to where the scenarios ship (the checkout, or the installed
    package's data); the child runs in the caller's working directory, so reports go to
    ./reports there. From an installed package no pytest configuration of the
    surroundings applies (the checkout's own pyproject.toml does)."""
    import signal

    root = assets.assets_root()
    isolate = [] if assets.checkout_root() else ["--rootdir", str(assets.scenarios_dir()), "-c", os.devnull]
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *isolate,
                             *(str(root / p) for p in paths), *extra], preexec_fn=_default_sigint)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            if not _terminal_foreground():  # a terminal's Ctrl-C reached the child already
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGINT)
            print("pgchaos: interrupted; waiting for pytest to remove what it started", file=sys.stderr)


def _terminal_foreground() -> bool:
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


def cmd_run(args: argparse.Namespace) -> int:
    names = scenario_names()
    unknown = [n for n in args.scenario if n not in names]
    if unknown:
        raise PgchaosError(f"unknown scenario {unknown[0]!r}; valid: {', '.join(names)}")
    return _pytest([f"scenarios/test_{n}.py" for n in args.scenario],
                   _stack_args(args) + _reports_args(args) + ["--pgchaos-min-executed", "1"]
                   + args.pytest_args)


def _reports_args(args: argparse.Namespace) -> list[str]:
    reports = getattr(args, "reports_dir", None)
    return ["--pgchaos-reports-dir", str(Path(reports).resolve())] if reports else []


def _stack_args(args: argparse.Namespace) -> list[str]:
    """--manifest / --attach / --engine / --profile handed on to the pytest plugin."""
    out = []
    if getattr(args, "manifest", None):
        out += ["--manifest", str(args.manifest)]
    if getattr(args, "attach", None) is not None:
        out += [f"--attach={args.attach}"]
    if getattr(args, "engine", None) not in (None, engines.DEFAULT_ENGINE):
        out += ["--pgchaos-engine", args.engine]
    if getattr(args, "profile", None) and args.command in ("run", "certify"):
        out += ["--stack-profile", args.profile]
    return out


def cmd_certify(args: argparse.Namespace) -> int:
    from harness.certify import certify
    from harness.split import check_stacks

    if check_stacks(args.stacks) > 1 and (args.attach is not None or args.engine != engines.DEFAULT_ENGINE):
        raise PgchaosError(f"--stacks {args.stacks} provisions a stack per part: it works with the "
                           f"{engines.DEFAULT_ENGINE} engine and without --attach")
    reports = Path(args.reports_dir).resolve() if getattr(args, "reports_dir", None) else None
    extra = ["--pgchaos-marginal-fails"] if args.marginal_fails else []
    extra += ["--pgchaos-no-page"] if args.no_page else []
    return certify(args.repeat, _stack_args(args) + extra + args.pytest_args, _pytest, reports,
                   marginal_fails=args.marginal_fails, stacks=args.stacks, run_parts=_pytest_parts)


def _pytest_parts(jobs: list[tuple[list[str], list[str], dict[str, str], Path]]) -> list[int]:
    """pytest sessions at once, each with its environment and its output in its log file; on
    our Ctrl-C every one is waited for while it removes its stack (as :func:`_pytest`)."""
    import signal

    root = assets.assets_root()
    isolate = [] if assets.checkout_root() else ["--rootdir", str(assets.scenarios_dir()), "-c", os.devnull]
    procs = []
    for n, (paths, extra, env, log) in enumerate(jobs, 1):
        with open(log, "wb") as out:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *isolate,
                 *(str(root / p) for p in paths), *extra],
                env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_default_sigint))
        _progress(f"part {n}/{len(jobs)} started on its own stack (log: {log})")
    codes: list[int | None] = [None] * len(procs)
    while any(c is None for c in codes):
        try:
            for i, proc in enumerate(procs):
                if codes[i] is None:
                    codes[i] = proc.wait()
                    _progress(f"part {i + 1}/{len(jobs)} done, exit {codes[i]}: "
                              + _last_line(jobs[i][3]))
        except KeyboardInterrupt:
            if not _terminal_foreground():
                for proc in procs:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGINT)
            print("pgchaos: interrupted; waiting for every part to remove its stack", file=sys.stderr)
    return [int(c) for c in codes if c is not None]


def _last_line(log: Path) -> str:
    """pytest's closing line (`N passed in ...`) of a part's log."""
    try:
        lines = [ln.strip(" =") for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    closing = [ln for ln in lines if " in " in ln and ("passed" in ln or "failed" in ln or "skipped" in ln
                                                        or "deselected" in ln or "error" in ln)]
    return (closing or lines or ["empty log"])[-1]


def pytest_with_env(paths: list[str], extra: list[str], env: Any) -> int:
    """:func:`_pytest` with ``env`` set for the child (ports and state folder of one gate side)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return _pytest(paths, extra)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def cmd_gate(args: argparse.Namespace) -> int:
    from harness.gate import ABS_S, CANDIDATE_ENV, REL, run_gate, side

    # options written after the candidate land in the pytest remainder: parse them as ours
    rest = list(args.pytest_args)
    cut = rest.index("--") if "--" in rest else len(rest)
    if rest[:cut]:
        again = args.gate_parser.parse_args([*rest[:cut], args.candidate],
                                            namespace=argparse.Namespace(**{**vars(args), "pytest_args": []}))
        if again.pytest_args or again.candidate != args.candidate:
            raise PgchaosError(f"gate: unexpected {' '.join(rest[:cut])!r} after {args.candidate!r}; "
                               "pytest options go after --")
        vars(args).update({k: v for k, v in vars(again).items() if k != "pytest_args"})
    args.pytest_args = rest[cut + 1:]

    candidate = side(args.candidate, "candidate", CANDIDATE_ENV)
    baseline = side(args.baseline, "baseline", {})
    if (candidate.variant, candidate.manifest) == (baseline.variant, baseline.manifest):
        candidate = side(args.candidate, "candidate", {})  # the same config: one stack for both
    reports = Path(args.reports_dir).resolve() if args.reports_dir else assets.default_reports_dir()
    select = (["-k", args.k] if args.k else []) + [a for a in args.pytest_args if a != "--"]
    return run_gate(candidate, baseline, args.repeat, select, pytest_with_env, reports,
                    rel=REL if args.rel is None else args.rel, abs_s=ABS_S if args.abs_s is None else args.abs_s)


def cmd_soak(args: argparse.Namespace) -> int:
    if args.minutes <= 0:
        raise PgchaosError("--minutes must be positive")
    os.environ["PGCHAOS_SOAK_MINUTES"] = str(args.minutes)
    extra = ["-s"] + (["--pgchaos-seed", str(args.seed)] if args.seed is not None else [])
    if assets.checkout_root() is None:
        raise PgchaosError("pgchaos soak runs tests/test_random_schedules.py of a checkout of the repository; "
                           "this installation has none (clone it and pip install -e .)")
    return _pytest(["tests/test_random_schedules.py"], extra)


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report.rebuild import main_report

    if args.page is not None or args.trend is not None or args.html is not None:
        from harness.report.publish import publish

        return publish(args.page, args.trend, args.html, install_allure=args.install_allure,
                       extra_run=args.run_dir)
    if args.run_dir is None:
        raise PgchaosError("name a run (reports/<run-id>) to re-judge, or ask for --page, --trend or --html")
    return main_report(args.run_dir, args.targets)


def cmd_drill(args: argparse.Namespace) -> int:
    from harness.gameday import DRILLS, DrillStep, run_drill

    if args.scenario not in DRILLS:
        raise PgchaosError(f"unknown drill {args.scenario!r}; valid: {', '.join(DRILLS)}")
    if not args.yes and not sys.stdin.isatty():
        raise PgchaosError("a drill asks before each step: run it on a terminal, or pass --yes")

    def decide(i: int, step: DrillStep) -> str:
        if args.yes:
            return "run" if step.run is not None else "skip"
        hint = "[r]un it / I did it [m]yself / [s]kip" if step.run else "I did it [m]yself / [s]kip"
        while True:
            answer = input(f"    {hint}? ").strip().lower()[:1]
            if answer in ("r", "") and step.run is not None:
                return "run"
            if answer == "m":
                return "manual"
            if answer == "s":
                return "skip"

    if args.profile is not None and args.profile not in PROFILES:
        raise PgchaosError(f"unknown profile {args.profile!r}; valid: {', '.join(PROFILES)}")
    reports = Path(args.reports_dir) if args.reports_dir else assets.default_reports_dir()
    stack = _detached(args)
    if args.profile is not None and ("citus" in stack.manifest.capabilities()) != (args.profile == "citus"):
        raise PgchaosError(f"--profile {args.profile}: the stack that is up ({stack.manifest.name}) is not of "
                           f"that profile; start one with `pgchaos up --profile {args.profile}`")
    if stack.attached:  # the load's own schema, as a session creates it (and drops it after, attach mode)
        stack.prepare()
    try:
        verdict = run_drill(stack, args.scenario, decide, print, reports)
    finally:
        if stack.attached:
            with contextlib.suppress(Exception):
                stack.drop_load_schema()
    rto, rpo = verdict.get("rto_s", {}), verdict.get("rpo", {})
    target = verdict.get("target") or {}
    summary = {"verdict": verdict.get("verdict"), "rto_s": rto, "target_rto_s": target.get("rto_s"),
               "lost": rpo.get("lost"), "target_rpo_s": target.get("rpo_s"),
               "reasons": verdict.get("reasons"), "steps": verdict.get("figures", {}).get("steps"),
               "detect_s": (verdict.get("detection") or {}).get("detect_s"),
               "history": verdict.get("history")}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"\n== {summary['verdict']}: write RTO {rto.get('write')} s, read RTO {rto.get('read')} s "
              f"(target {summary['target_rto_s']} s); lost writes {summary['lost']} "
              f"(target RPO {summary['target_rpo_s']} s)")
        if summary["detect_s"] is not None:
            print(f"   the expected alert paged {summary['detect_s']:.1f} s after the disaster")
        for reason in summary["reasons"] or []:
            print(f"   - {reason}")
    from harness.verdict import exit_status

    return exit_status([summary["verdict"]])


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 2, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"pgchaos: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="pgchaos", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pgchaos {assets.version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(handler=handler)
        if name in STACK_COMMANDS:
            p.add_argument("--manifest", default=None, metavar="FILE",
                           help="the stack manifest (TOML); default: the reference stack's")
            p.add_argument("--attach", nargs="?", const="", default=None, metavar="PROJECT",
                           help="use a stack that is already running (its compose project, or with --engine "
                                "swarm-nodes its swarm stack; found from the manifest when not named); pgchaos "
                                "removes nothing of it")
        if name in ("inject", "heal", "drill"):
            p.add_argument("--run-id", default=None, help="which stack of `pgchaos up` (default: yours, "
                           "started from this folder)")
        if name in STACK_COMMANDS:  # status, inject, heal, drill: the engine of an --attach stack
            p.add_argument("--engine", default=engines.DEFAULT_ENGINE, choices=engines.names(),
                           help="deployment engine: " + "; ".join(f"{n}: {d}" for n, d in
                                                                  engines.descriptions().items()))
        if name in ("run", "certify"):
            p.add_argument("--profile", default=None, choices=PROFILES,
                           help="stack profile the session provisions (default local; citus: add "
                                "`-- -m citus` for the Citus scenarios only)")
        return p

    add("setup", cmd_setup, "install and start what the host needs (Docker engine, compose)")
    p = add("up", cmd_up, "build images if needed, bring the stack up, wait for the steady state")
    p.add_argument("--profile", default="local", help=f"stack profile: {', '.join(PROFILES)}")
    p.add_argument("--variant", default=None, help="config variant under compose/variants/")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p = add("status", cmd_status, "topology and the daily health check of the running stack")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--run-id", default=None, help="which stack (default: your newest, started from this folder)")
    p.add_argument("--all", action="store_true", help="list every stack of `pgchaos up` on this machine "
                   "(its state folder), whoever started it; no health check")
    p = add("down", cmd_down, "remove the stack: containers, networks, volumes, loop mounts")
    p.add_argument("--run-id", default=None, help="which stack (default: your newest, started from this "
                   "folder; another's only when named)")
    p = add("gc", cmd_gc, "remove what dead runs left (only things labelled as ours)")
    p.add_argument("--all", action="store_true", help="also remove live and detached stacks of this state "
                   "folder ($PGCHAOS_STATE_DIR); another folder's live stacks are kept")
    p = add("check", cmd_check, "run the checkers on a history file and print the verdict JSON")
    p.epilog = ("exit status: 0 pass or waived; 1 fail, unknown or error; 2 bad input; 3 marginal (an RTO "
                "within --margin of its target); 4 unjudged (no --target row, or no fault: measured, "
                "not judged)")
    p.add_argument("history", help="history JSONL file")
    p.add_argument("--target", default=None, metavar="ROW", help="row of the targets table")
    p.add_argument("--margin", type=float, default=0.15, metavar="FRACTION",
                   help="an RTO within this fraction of its target is marginal (default 0.15)")
    p.add_argument("--marginal-fails", action="store_true", help="exit 1, not 3, on a marginal verdict")
    p.add_argument("--targets", default=None, metavar="FILE",
                   help="RTO/RPO table (default scenarios/targets.toml)")
    p = add("list", cmd_list, "faults, targets, scenarios and drills")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--manifest", default=None, metavar="FILE",
                   help="a stack manifest: which scenarios apply to that stack, what it lacks for the others")
    p.add_argument("--attach", nargs="?", const="", default=None, metavar="PROJECT",
                   help="judge the capabilities in attach mode (no loop volumes, no tools)")
    p.add_argument("--engine", default=None, choices=engines.names(),
                   help="judge the capabilities on this engine (e.g. swarm-nodes: host faults; compose: "
                        "partition); with --profile and no --manifest, the profile's manifest for it")
    p.add_argument("--profile", default=None, choices=PROFILES, help="the profile's manifest (default local)")
    p = add("inject", cmd_inject, "inject a fault into the stack of `pgchaos up` (game day)")
    p.add_argument("fault", help="fault name (pgchaos list)")
    p.add_argument("target", help="role or node: primary, replica, sync-standby, worker-1, etcd, "
                   "router, pooler, a link (client, replication, worker-1) ...")
    p.add_argument("--param", action="append", metavar="K=V", help="fault parameter, e.g. latency=300")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="heal after S seconds")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("heal", cmd_heal, "heal one injected fault, or --all (every repair, always safe)")
    p.add_argument("id", nargs="?", default=None, help="fault id printed by inject")
    p.add_argument("--all", action="store_true", help="heal everything")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("run", cmd_run, "run scenarios by name (pytest underneath; reports under ./reports)")
    p.add_argument("--reports-dir", default=None, metavar="DIR", help="where reports go (default ./reports)")
    p.add_argument("scenario", nargs="+", help="scenario name (pgchaos list)")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: more pytest options")
    p = add("certify", cmd_certify, "run the whole catalogue and write the report; non-zero exit "
            "when a target fails without a waiver")
    p.add_argument("--marginal-fails", action="store_true",
                   help="a gate run: a marginal verdict (an RTO within 15%% of its target) fails")
    p.add_argument("--no-page", action="store_true", help="do not write the certification page")
    p.add_argument("--repeat", type=int, default=1, metavar="N", help="run everything N times; "
                   "report verdict flips and the RTO spread")
    p.add_argument("--stacks", type=int, default=1, metavar="N",
                   help="split the catalogue over N identical stacks run at once (ports moved by 1000 per "
                        "stack; one merged report): about N times faster where the machine has the cores")
    p.add_argument("--reports-dir", default=None, metavar="DIR", help="where reports go (default ./reports)")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: more pytest options")
    p = add("gate", cmd_gate, "a config change against a baseline: the same scenarios on both, interleaved, "
                              "N samples each; fails on a regression beyond the baseline's noise")
    p.epilog = ("regression rule: every candidate sample above the baseline's maximum by more than "
                "max(20% of it, 1 s), per scenario and per recovery phase; lost writes or a worse verdict "
                "too. exit status: 1 on a regression or a failing candidate, else the candidate's (0, 3, 4)")
    p.add_argument("candidate", help="a variant under compose/variants/, a manifest file, or 'reference'")
    p.add_argument("--baseline", default=None, metavar="REF",
                   help="variant, manifest or 'reference' (default: the reference config)")
    p.add_argument("--repeat", type=int, default=3, metavar="N", help="samples per side (default 3)")
    p.add_argument("-k", default=None, metavar="EXPR", help="which scenarios (pytest -k expression)")
    p.add_argument("--rel", type=float, default=None, metavar="FRACTION", help="relative allowance (0.2)")
    p.add_argument("--abs-s", type=float, default=None, metavar="S", help="absolute allowance (1 s)")
    p.add_argument("--reports-dir", default=None, metavar="DIR", help="where reports go (default ./reports)")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: more pytest options")
    p.set_defaults(gate_parser=p)
    p = add("soak", cmd_soak, "random fault schedules for N minutes (Hypothesis; seed printed)")
    p.add_argument("--minutes", type=float, required=True, metavar="N", help="how long to soak")
    p.add_argument("--seed", type=int, default=None, metavar="N", help="replay a printed seed")
    p = add("report", cmd_report, "re-judge a run from its histories: verdict.rebuilt.json per "
            "scenario (verdict.json is kept), summary, JUnit, pictures and the certification page; "
            "or write the pages only: --page, --trend, --html")
    p.add_argument("run_dir", nargs="?", default=None, help="reports/<run-id>")
    p.add_argument("--targets", default=None, metavar="FILE",
                   help="RTO/RPO table (default scenarios/targets.toml)")
    p.add_argument("--page", nargs="*", default=None, metavar="RUN",
                   help="write the certification page of each run (default: the newest under ./reports)")
    p.add_argument("--trend", nargs="?", const="", default=None, metavar="DIR",
                   help="write DIR/trend.html: each scenario's RTO across the runs under DIR (default ./reports)")
    p.add_argument("--html", nargs="*", default=None, metavar="RUN",
                   help="render the Allure results into a static site with Allure 3 (npm package allure)")
    p.add_argument("--install-allure", action="store_true",
                   help="with --html: install Allure 3 into ~/.cache/pgchaos/allure when it is not found")
    p = add("drill", cmd_drill, "walk through the guide's runbook for a disaster, timing each step")
    p.add_argument("--reports-dir", default=None, metavar="DIR", help="where reports go (default ./reports)")
    p.add_argument("scenario", help="drill name (pgchaos list)")
    p.add_argument("--yes", action="store_true", help="run every step without asking")
    p.add_argument("--profile", default=None, help="the profile the stack that is up must be (citus: the "
                   "guide's Citus steps run for real); default: whatever is up")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    return parser


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Arguments after `--` of `run`, `certify` and `gate` go to pytest as they are (for the
    gate behind a `--` of their own: its options may follow the candidate)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] in ("run", "certify", "gate") and "--" in argv:
        cut = argv.index("--")
        args = parser.parse_args(argv[:cut])
        args.pytest_args = [*args.pytest_args, *(["--"] if argv[0] == "gate" else []), *argv[cut + 1:]]
        return args
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    try:
        return args.handler(args)
    except PgchaosError as exc:
        print(f"pgchaos: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a file that is missing, a folder, unreadable
        print(f"pgchaos: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pgchaos: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an unforeseen failure: one line, never a traceback
        detail = " ".join(str(exc).split()) or "(no message)"
        print(f"pgchaos: {type(exc).__name__}: {detail} (PGCHAOS_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        if os.environ.get("PGCHAOS_DEBUG"):
            import traceback

            traceback.print_exc()
        return 2


if __name__ == "__main__":
    sys.exit(main())
