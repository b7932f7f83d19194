"""Progress on a terminal: a spinner with elapsed time for long steps, plain
lines when stderr is not a terminal (CI logs)."""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def spinner(message: str) -> Iterator[None]:
    """Show `message` with a spinner and the elapsed seconds until the block ends."""
    start = time.monotonic()
    if not sys.stderr.isatty():
        print(f"[pgchaos] {message} ...", file=sys.stderr, flush=True)
        try:
            yield
        finally:
            print(f"[pgchaos] {message}: {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True)
        return
    done = threading.Event()

    def spin() -> None:
        for frame in itertools.cycle("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"):
            if done.wait(0.1):
                break
            sys.stderr.write(f"\r{frame} {message} {time.monotonic() - start:5.1f} s")
            sys.stderr.flush()

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        sys.stderr.write(f"\r✓ {message} {time.monotonic() - start:5.1f} s\n")
        sys.stderr.flush()
