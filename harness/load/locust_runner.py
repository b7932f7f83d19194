"""Runs the locust users (loadtests/locustfile.py) headless in a subprocess.

locust monkey-patches the interpreter on import, so nothing in harness/
imports it; the subprocess shares the run's monotonic timeline through
PGCHAOS_RUN_START and writes its own history file, merged afterwards.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

from harness import assets
from harness.errors import PgchaosError

PR_SET_PDEATHSIG = 1
LOCUSTFILE = assets.locustfile()
USER_CLASSES = ("WriterUser", "ReaderUser", "VectorUser")
# users that need a capability of the stack: the vector search reads the guide's `vectors` table
USER_NEEDS = {"VectorUser": "guide-schema"}


def user_classes_for(capabilities: dict[str, int]) -> tuple[str, ...]:
    """The locust users a stack can serve: none that needs what it lacks."""
    return tuple(u for u in USER_CLASSES if USER_NEEDS.get(u) is None or capabilities.get(USER_NEEDS[u]))


def _die_with_parent() -> None:
    """In the child: SIGTERM when the runner dies, even by kill -9 (Linux prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class LocustLoad:
    """A bounded locust run: it stops by itself after `run_time_s`."""

    def __init__(self, dsn: str, out_dir: Path, run_start: float, key_base: int,
                 users: int = 3, run_time_s: float = 600.0, pacing_s: float = 0.1,
                 user_classes: tuple[str, ...] = USER_CLASSES, pipeline: bool = True) -> None:
        self.dsn = dsn
        self.out_dir = out_dir
        self.run_start = run_start
        self.key_base = key_base
        self.users = users
        self.run_time_s = run_time_s
        self.pacing_s = pacing_s
        self.user_classes = user_classes
        self.pipeline = pipeline  # writers: BEGIN..INSERT..SET LOCAL in one round trip, COMMIT in another
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def history_path(self) -> Path:
        return self.out_dir / "history-locust.jsonl"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "--users", str(self.users), "--spawn-rate", str(self.users),
            "--run-time", f"{int(self.run_time_s)}s", "--stop-timeout", "3",
            "--csv", str(self.out_dir / "locust"), "--html", str(self.out_dir / "locust.html"),
            "--only-summary", "--exit-code-on-error", "0", "--loglevel", "WARNING",
            *self.user_classes,
        ]

    def start(self) -> LocustLoad:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ, "PGCHAOS_DSN": self.dsn, "PGCHAOS_HISTORY": str(self.history_path),
            "PGCHAOS_RUN_START": repr(self.run_start), "PGCHAOS_KEY_BASE": str(self.key_base),
            "PGCHAOS_PACING_S": str(self.pacing_s), "PGCHAOS_PIPELINE": "1" if self.pipeline else "0",
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(assets.import_root()), os.environ.get("PYTHONPATH")])),
        }
        log = open(self.out_dir / "locust.log", "wb")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(self.command(), env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        log.close()
        return self

    def stop(self, timeout_s: float = 20.0) -> int:
        """Ask locust to stop (SIGTERM, it writes its reports), kill if it hangs."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        rc = self.proc.returncode
        if not self.history_path.exists():
            tail = (self.out_dir / "locust.log").read_text(errors="replace")[-500:]
            raise PgchaosError(f"locust wrote no history (exit {rc}): {tail}")
        return rc

    def __enter__(self) -> LocustLoad:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
