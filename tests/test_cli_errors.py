"""Bad input: one clear line on stderr, exit 2, nothing left running."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest


def pgchaos(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("pgchaos: ") and needle in lines[0], lines[0]


@pytest.fixture
def empty_state(tmp_path):
    return {"PGCHAOS_STATE_DIR": str(tmp_path / "state")}


def test_unknown_profile():
    assert_one_line_error(pgchaos("up", "--profile", "nope"), "unknown profile 'nope'; valid: local, citus")


def test_citus_profile_explains_why_not():
    assert_one_line_error(pgchaos("up", "--profile", "citus"), "needs the Citus packages")


def test_unknown_variant():
    assert_one_line_error(pgchaos("up", "--variant", "nope"), "unknown stack variant 'nope'")


@pytest.mark.parametrize("command", ["down", "status"])
def test_nothing_up(command, empty_state):
    assert_one_line_error(pgchaos(command, env=empty_state), "no pgchaos stack is up")


def test_daemon_unreachable(empty_state):
    env = {**empty_state, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    assert_one_line_error(pgchaos("gc", env=env), "Docker daemon unreachable")


def test_port_taken(empty_state):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        env = {**empty_state, "PGCHAOS_PGBOUNCER_PORT": str(port),
               "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
        proc = pgchaos("up", env=env)
    # the port check comes before anything is created (no Docker needed to reject it)
    assert_one_line_error(proc, f"port 127.0.0.1:{port} is taken (needed for pgbouncer)")
    assert not os.path.exists(os.path.join(empty_state["PGCHAOS_STATE_DIR"], "runs"))


def test_bad_port_variable(empty_state):
    proc = pgchaos("up", env={**empty_state, "PGCHAOS_TOXIPROXY_PORT": "99999"})
    assert_one_line_error(proc, "PGCHAOS_TOXIPROXY_PORT='99999' is not a port number")


def test_check_malformed_history(tmp_path):
    bad = tmp_path / "h.jsonl"
    bad.write_text('{"index": 0, "time": 0.0, "process": 1, "type": "invoke", "f": "write", "value": 1}\n'
                   "not json\n")
    assert_one_line_error(pgchaos("check", str(bad)), "line 2")


def test_check_unknown_target(tmp_path):
    ok = tmp_path / "h.jsonl"
    ok.write_text('{"index": 0, "time": 0.0, "process": 1, "type": "invoke", "f": "write", "value": 1}\n')
    assert_one_line_error(pgchaos("check", str(ok), "--target", "nope"), "nope")
