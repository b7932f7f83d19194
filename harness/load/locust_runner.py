"""Runs the locust users (loadtests/locustfile.py) headless in a subprocess.

locust monkey-patches the interpreter on import, so nothing in harness/
imports it; the subprocess shares the run's monotonic timeline through
PGCHAOS_RUN_START and writes its own history file, merged afterwards.

With ``workers`` > 0 the load runs distributed, on locust's own master/worker
mode: a headless master (bound to 127.0.0.1) spreads the users over that many
local worker processes, each with its own history file and its own range of
process ids (so its keys never collide with another's); every file is merged
into the run's one history. Remote workers (``locust -f loadtests/locustfile.py
--worker --master-host HOST``, same PGCHAOS_* environment) add load, but their
histories live on another host's clock: they are not judged.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

from harness import assets
from harness.errors import PgchaosError

PR_SET_PDEATHSIG = 1
LOCUSTFILE = assets.locustfile()
USER_CLASSES = ("WriterUser", "ReaderUser", "VectorUser")
PROCESS_BASE: Final = 100  # locust users' process ids start here (probes use 1, 2, 11, 12, ...)
WORKER_SPAN: Final = 400  # process ids per worker: 100-499, 500-899, ... (capacity clients start at 5000)
MAX_WORKERS: Final = 10
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
                 user_classes: tuple[str, ...] = USER_CLASSES, pipeline: bool = True,
                 workers: int = 0) -> None:
        if not 0 <= workers <= MAX_WORKERS:
            raise PgchaosError(f"load workers: {workers} not in 0..{MAX_WORKERS}")
        self.dsn = dsn
        self.out_dir = out_dir
        self.run_start = run_start
        self.key_base = key_base
        self.users = users
        self.run_time_s = run_time_s
        self.pacing_s = pacing_s
        self.user_classes = user_classes
        self.pipeline = pipeline  # writers: BEGIN..INSERT..SET LOCAL in one round trip, COMMIT in another
        self.workers = workers
        self.gated = False
        self.proc: subprocess.Popen[bytes] | None = None
        self.worker_procs: list[subprocess.Popen[bytes]] = []
        self.master_port: int | None = None

    @property
    def gate_path(self) -> Path:
        """The start gate: the users wait for this file (see :meth:`start`)."""
        return self.out_dir / "locust.start"

    @property
    def history_path(self) -> Path:
        """The (master's, when distributed) history file."""
        return self.out_dir / "history-locust.jsonl"

    @property
    def history_paths(self) -> list[Path]:
        """Every history file of the load: the master's, then each worker's."""
        return [self.history_path] + [self.out_dir / f"history-locust-worker-{i}.jsonl"
                                      for i in range(self.workers)]

    def command(self) -> list[str]:
        distributed = ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port",
                       str(self.master_port), "--expect-workers", str(self.workers)] if self.workers else []
        return [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", *distributed,
            "--users", str(self.users), "--spawn-rate", str(self.users),
            "--run-time", f"{int(self.run_time_s)}s", "--stop-timeout", "3",
            "--csv", str(self.out_dir / "locust"), "--html", str(self.out_dir / "locust.html"),
            "--only-summary", "--exit-code-on-error", "0", "--loglevel", "WARNING",
            *self.user_classes,
        ]

    def worker_command(self) -> list[str]:
        return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
                "--master-host", "127.0.0.1", "--master-port", str(self.master_port),
                "--loglevel", "WARNING"]

    def _env(self, history: Path, process_base: int) -> dict[str, str]:
        gate = {"PGCHAOS_START_GATE": str(self.gate_path)} if self.gated else {}
        return {
            **os.environ, **gate, "PGCHAOS_DSN": self.dsn, "PGCHAOS_HISTORY": str(history),
            "PGCHAOS_RUN_START": repr(self.run_start), "PGCHAOS_KEY_BASE": str(self.key_base),
            "PGCHAOS_PACING_S": str(self.pacing_s), "PGCHAOS_PIPELINE": "1" if self.pipeline else "0",
            "PGCHAOS_PROCESS_BASE": str(process_base),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(assets.import_root()), os.environ.get("PYTHONPATH")])),
        }

    def _spawn(self, cmd: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
        log = open(self.out_dir / log_name, "wb")  # noqa: SIM115 - owned by the child
        try:
            return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=_die_with_parent)
        finally:
            log.close()

    def start(self, gated: bool = False) -> LocustLoad:
        """Start the processes. ``gated``: the users wait for :meth:`open_gate` before their
        first connection — the interpreter and locust (about 2 s of imports) start meanwhile."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.gated = gated
        self.gate_path.unlink(missing_ok=True)
        if self.workers:
            with socket.socket() as sock:  # a free port on loopback for the master
                sock.bind(("127.0.0.1", 0))
                self.master_port = sock.getsockname()[1]
        self.proc = self._spawn(self.command(), self._env(self.history_path, PROCESS_BASE), "locust.log")
        for i in range(self.workers):
            env = self._env(self.out_dir / f"history-locust-worker-{i}.jsonl", PROCESS_BASE + i * WORKER_SPAN)
            self.worker_procs.append(self._spawn(self.worker_command(), env, f"locust-worker-{i}.log"))
        return self

    def open_gate(self) -> None:
        """Let a gated load's users go."""
        self.gate_path.touch()

    def running(self) -> bool:
        """Whether every process that runs users has recorded an op (its history is not empty)."""
        paths = self.history_paths[1:] if self.workers else [self.history_path]
        return all(p.exists() and p.stat().st_size > 0 for p in paths)

    def wait_running(self, timeout_s: float = 30.0) -> bool:
        """Wait (bounded) until :meth:`running`; False when it did not start in time or exited."""
        deadline = time.monotonic() + timeout_s
        while not self.running():
            if time.monotonic() >= deadline or (self.proc is not None and self.proc.poll() is not None):
                return False
            time.sleep(0.1)
        return True

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
        for worker in self.worker_procs:  # the master's quit stops them; make sure
            try:
                worker.wait(timeout=timeout_s if worker.poll() is None else 0)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=5)
        if not self.history_path.exists():
            tail = (self.out_dir / "locust.log").read_text(errors="replace")[-500:]
            raise PgchaosError(f"locust wrote no history (exit {rc}): {tail}")
        return rc

    def __enter__(self) -> LocustLoad:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
