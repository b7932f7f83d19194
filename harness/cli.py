"""The `pgchaos` command line: stack lifecycle, offline checks and game days."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from harness.errors import PgchaosError
from harness.stack.spec import COMPOSE_DIR, PROFILES, REPO_ROOT

Handler = Callable[[argparse.Namespace], int]


def _progress(msg: str) -> None:
    print(f"[pgchaos] {msg}", file=sys.stderr, flush=True)


def cmd_setup(args: argparse.Namespace) -> int:
    return subprocess.call(["bash", str(COMPOSE_DIR / "scripts" / "setup-host.sh")])


def cmd_up(args: argparse.Namespace) -> int:
    from harness.stack import Stack, StackSpec
    from harness.stack.gc import collect
    from harness.stack.stack import check_ports_free, runs_dir

    spec = StackSpec(profile=args.profile, variant=args.variant)
    spec.validate()
    if runs_dir().exists() and any(runs_dir().glob("*/run.json")):
        running = ", ".join(p.parent.name for p in runs_dir().glob("*/run.json"))
        raise PgchaosError(f"a stack is already up ({running}); run `pgchaos down` first")
    check_ports_free(dict(spec.ports.__dict__))
    gc = collect()
    if gc.projects:
        _progress(str(gc))
    stack = Stack(spec, detached=True, progress=_progress)
    t0 = time.monotonic()
    try:
        stack.start()
    except BaseException:
        from harness.session import stop_uninterrupted

        _progress("start failed; removing what was created")
        stop_uninterrupted(stack)
        raise
    _progress(f"up in {time.monotonic() - t0:.1f} s")
    return cmd_status(argparse.Namespace(json=args.json, run_id=stack.run_id))


def cmd_status(args: argparse.Namespace) -> int:
    from harness.stack import Stack, steady_state

    stack = Stack.attach(getattr(args, "run_id", None), progress=_progress)
    state = steady_state(stack)
    doc = {"run_id": stack.run_id, "project": stack.project, **state.as_dict()}
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print(f"stack {stack.project}: {'HEALTHY' if state.healthy else 'UNHEALTHY'}")
        print(f"leader: {doc['leader']}  replicas: "
              f"{', '.join(r['name'] + '(' + r['state'] + ')' for r in doc['replicas'])}")
        print(f"workers: {', '.join(w['name'] + ('' if w['up'] else ' DOWN') for w in doc['workers'])}")
        for check in state.checks:
            print(f"  {'ok ' if check.ok else 'BAD'} {check.name:20} {check.detail}")
        print("endpoints: " + "  ".join(f"{k}={v}" for k, v in doc["endpoints"].items()))
    return 0 if state.healthy else 1


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
    from harness.verdict import check_file, exit_code

    result = check_file(args.history, target_row=args.target)
    print(json.dumps(result, indent=2))
    return exit_code(result)


def _detached() -> Any:
    from harness.stack import Stack

    return Stack.attach(progress=_progress)


def cmd_list(args: argparse.Namespace) -> int:
    from harness.gameday import DRILLS
    from harness.nemesis import CATALOGUE
    from harness.targets import load_targets

    targets = load_targets()
    doc = {
        "faults": [{"name": f.name, "kind": f.kind, "description": f.description}
                   for f in CATALOGUE.values()],
        "targets": [t.to_dict() for t in targets.rows.values()],
        "waivers": [w.to_dict() for w in targets.waivers],
        "scenarios": scenario_names(),
        "drills": {name: d["guide"] for name, d in DRILLS.items()},
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
    print("\nscenarios (pgchaos run NAME):")
    for name, about in doc["scenarios"].items():
        print(f"  {name:26} {about}")
    print("\ndrills (pgchaos drill NAME):")
    for name, guide in doc["drills"].items():
        print(f"  {name:22} {guide}")
    return 0


def scenario_names() -> dict[str, str]:
    """Scenario modules under scenarios/: name -> first line of their docstring."""
    import ast

    found = {}
    for path in sorted((REPO_ROOT / "scenarios").glob("test_*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        found[path.stem.removeprefix("test_")] = doc.strip().splitlines()[0] if doc else ""
    return found


def cmd_inject(args: argparse.Namespace) -> int:
    from harness.gameday import heal, inject, parse_params
    from harness.nemesis import Nemesis
    from harness.progress import spinner

    Nemesis.fault(args.fault)  # an unknown fault is named before any stack is looked for
    params = parse_params(args.param or [])
    stack = _detached()
    record = inject(stack, args.fault, args.target, params)
    out = {"injected": record}
    if args.duration is not None:
        with spinner(f"{args.fault} on {record['target']} for {args.duration:.0f} s"):
            time.sleep(args.duration)
        out["healed"] = heal(stack, str(record["id"]))
    print(json.dumps(out) if args.json else
          f"injected #{record['id']}: {record['fault']} on {record['target']}"
          + (" (healed)" if "healed" in out else f"; heal with: pgchaos heal {record['id']}"))
    return 0


def cmd_heal(args: argparse.Namespace) -> int:
    from harness.gameday import heal

    if args.id is None and not args.all:
        raise PgchaosError("say which fault to heal (pgchaos heal ID) or --all")
    healed = heal(_detached(), None if args.all else args.id)
    names = ", ".join("#{id} {fault} {target}".format(**r) for r in healed) or "nothing active"
    print(json.dumps({"healed": healed}) if args.json else
          f"healed: {names}" + ("; every container running, links clean, disks freed" if args.all else ""))
    return 0


def _pytest(paths: list[str], extra: list[str]) -> int:
    return subprocess.call([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *paths, *extra],
                           cwd=REPO_ROOT)


def cmd_run(args: argparse.Namespace) -> int:
    names = scenario_names()
    unknown = [n for n in args.scenario if n not in names]
    if unknown:
        raise PgchaosError(f"unknown scenario {unknown[0]!r}; valid: {', '.join(names)}")
    return _pytest([f"scenarios/test_{n}.py" for n in args.scenario], args.pytest_args)


def cmd_certify(args: argparse.Namespace) -> int:
    from harness.certify import certify

    return certify(args.repeat, args.pytest_args, _pytest)


def cmd_soak(args: argparse.Namespace) -> int:
    if args.minutes <= 0:
        raise PgchaosError("--minutes must be positive")
    os.environ["PGCHAOS_SOAK_MINUTES"] = str(args.minutes)
    extra = ["-s"] + (["--seed", str(args.seed)] if args.seed is not None else [])
    return _pytest(["tests/test_random_schedules.py"], extra)


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report.rebuild import main_report

    return main_report(args.run_dir)


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

    verdict = run_drill(_detached(), args.scenario, decide, print, REPO_ROOT / "reports")
    rto, rpo = verdict.get("rto_s", {}), verdict.get("rpo", {})
    target = verdict.get("target") or {}
    summary = {"verdict": verdict.get("verdict"), "rto_s": rto, "target_rto_s": target.get("rto_s"),
               "lost": rpo.get("lost"), "target_rpo_s": target.get("rpo_s"),
               "reasons": verdict.get("reasons"), "steps": verdict.get("figures", {}).get("steps"),
               "history": verdict.get("history")}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"\n== {summary['verdict']}: write RTO {rto.get('write')} s, read RTO {rto.get('read')} s "
              f"(target {summary['target_rto_s']} s); lost writes {summary['lost']} "
              f"(target RPO {summary['target_rpo_s']} s)")
        for reason in summary["reasons"] or []:
            print(f"   - {reason}")
    return 0 if summary["verdict"] in ("pass", "waived") else 1


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 2, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"pgchaos: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="pgchaos", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    add("setup", cmd_setup, "install and start what the host needs (Docker engine, compose)")
    p = add("up", cmd_up, "build images if needed, bring the stack up, wait for the steady state")
    p.add_argument("--profile", default="local", help=f"stack profile: {', '.join(PROFILES)}")
    p.add_argument("--variant", default=None, help="config variant under compose/variants/")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p = add("status", cmd_status, "topology and the daily health check of the running stack")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--run-id", default=None, help="which stack (default: the newest)")
    p = add("down", cmd_down, "remove the stack: containers, networks, volumes, loop mounts")
    p.add_argument("--run-id", default=None, help="which stack (default: the newest)")
    p = add("gc", cmd_gc, "remove what dead runs left (only things labelled as ours)")
    p.add_argument("--all", action="store_true", help="also remove live and detached stacks")
    p = add("check", cmd_check, "run the checkers on a history file and print the verdict JSON")
    p.add_argument("history", help="history JSONL file")
    p.add_argument("--target", default=None, metavar="ROW", help="row of scenarios/targets.toml")
    p = add("list", cmd_list, "faults, targets, scenarios and drills")
    p.add_argument("--json", action="store_true", help="machine-readable output")
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
    p = add("run", cmd_run, "run scenarios by name (pytest underneath; reports under reports/)")
    p.add_argument("scenario", nargs="+", help="scenario name (pgchaos list)")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: more pytest options")
    p = add("certify", cmd_certify, "run the whole catalogue and write the report; non-zero exit "
            "when a target fails without a waiver")
    p.add_argument("--repeat", type=int, default=1, metavar="N", help="run everything N times; "
                   "report verdict flips and the RTO spread")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: more pytest options")
    p = add("soak", cmd_soak, "random fault schedules for N minutes (Hypothesis; seed printed)")
    p.add_argument("--minutes", type=float, required=True, metavar="N", help="how long to soak")
    p.add_argument("--seed", type=int, default=None, metavar="N", help="replay a printed seed")
    p = add("report", cmd_report, "rebuild summary, JUnit and pictures from a run directory")
    p.add_argument("run_dir", help="reports/<run-id>")
    p = add("drill", cmd_drill, "walk through the guide's runbook for a disaster, timing each step")
    p.add_argument("scenario", help="drill name (pgchaos list)")
    p.add_argument("--yes", action="store_true", help="run every step without asking")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
