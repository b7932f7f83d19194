"""A stack for a whole test session: gc of dead runs first, one stack reused
by every scenario, removed at the end (unless kept, and always when it never
came up), also on Ctrl-C or SIGTERM, and a second Ctrl-C cannot cut the
removal short. None of this depends on how SIGINT was disposed of when the
process started: the removal runs in `finally` with SIGINT and SIGTERM ignored."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator

from harness.errors import PgchaosError
from harness.stack import Stack, StackSpec
from harness.stack.gc import collect


def _progress(msg: str) -> None:
    print(f"[pgchaos] {msg}", file=sys.stderr, flush=True)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def session_stack(spec: StackSpec, keep: bool = False) -> Iterator[Stack]:
    spec.validate()
    report = collect()
    if report.projects:
        _progress(str(report))
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    reused = _detached_stack(spec)
    stack = reused or Stack(spec, detached=keep, progress=_progress)
    started = False
    try:
        if reused is None:
            stack.start()
        else:
            _progress(f"reusing the stack started by `pgchaos up`: {stack.project}")
        started = True
        yield stack
    finally:
        # --keep-stack keeps a stack that came up; one whose start failed is removed
        # (it is labelled detached, so gc would keep it for ever).
        if reused is None and (not keep or not started):
            if keep:
                _progress("the stack did not come up: removing it despite --keep-stack")
            stop_uninterrupted(stack)
        signal.signal(signal.SIGTERM, previous)


def stop_uninterrupted(stack: Stack) -> None:
    """Remove the stack with Ctrl-C and SIGTERM ignored: an impatient second
    interrupt would otherwise leave containers, mounts and state behind."""
    if threading.current_thread() is not threading.main_thread():
        stack.stop()
        return
    if stack.attached:  # nothing of the user's is removed: only the load's schema goes
        _progress(f"leaving {stack.project} running; dropping the load's schema")
    else:
        _progress(f"removing {stack.project} (Ctrl-C is ignored until it is gone)")
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stack.stop()
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _detached_stack(spec: StackSpec) -> Stack | None:
    """A stack from `pgchaos up` with the same profile and variant, if one is up."""
    try:
        stack = Stack.attach(progress=_progress)
    except PgchaosError:
        return None
    if spec.attach is not None:
        return None
    same = (stack.spec.profile, stack.spec.variant, stack.manifest.path, stack.spec.engine) == (
        spec.profile, spec.variant, spec.manifest_file.resolve(), spec.engine)
    return stack if stack.detached and same else None
