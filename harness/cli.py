"""The `pgchaos` command line: stack lifecycle, offline checks and game days."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from harness.errors import PgchaosError
from harness.stack.spec import COMPOSE_DIR, PROFILES

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
        _progress("start failed; removing what was created")
        stack.stop()
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgchaos", description=__doc__)
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
    except KeyboardInterrupt:
        print("pgchaos: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
