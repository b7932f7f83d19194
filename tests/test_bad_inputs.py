"""Bad input, table-driven: every row is one mistake a user can make with a
command that exists today; the answer is exactly one line on stderr,
starting with "pgchaos: ", exit status 2, and nothing created.

Rows marked xfail are known gaps (a traceback instead of the one line);
they are strict, so a fix shows up as a failure to un-mark.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import cli
from harness import targets as targets_module
from harness.errors import PgchaosError
from harness.stack.spec import shifted_ports
from harness.targets import TargetsError, load_targets

# its CLI rows need their ports free: ports of its own, clear of the defaults and of every other
# test's stacks (the cleanup test's run beside it in CI)
pytestmark = [pytest.mark.own_stack, pytest.mark.beside(weight=1)]
BAD_INPUT_PORTS = shifted_ports(23000)

REPO_ROOT = Path(__file__).resolve().parents[1]
NO_DAEMON = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
OP = '{"index": 0, "time": 0.0, "process": 1, "type": "invoke", "f": "write", "value": 1}'


@dataclass(frozen=True)
class BadInput:
    """One row: `pgchaos ARGS` with ENV and FILES must fail with one line containing NEEDLE.

    `{tmp}` in args, env, files and needle is the row's scratch folder; `{port}`
    a port held busy while the command runs.
    """

    args: tuple[str, ...]
    needle: str
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str | bytes] = field(default_factory=dict)
    gap: str | None = None  # known gap: why it does not answer with one line yet


CLI_ROWS: dict[str, BadInput] = {
    "up: unknown profile": BadInput(("up", "--profile", "nope"), "unknown profile 'nope'; valid: local, citus"),
    "up: citus profile": BadInput(("up", "--profile", "citus"), "needs the Citus packages"),
    "up: unknown variant": BadInput(("up", "--variant", "nope"),
                                    "unknown stack variant 'nope'; valid: async-replication"),
    "up: port taken": BadInput(("up",), "port 127.0.0.1:{port} is taken (needed for pgbouncer)",
                               env={"PGCHAOS_PGBOUNCER_PORT": "{port}", **NO_DAEMON}),
    "up: port variable not a port": BadInput(("up",), "PGCHAOS_TOXIPROXY_PORT='99999' is not a port number",
                                             env={"PGCHAOS_TOXIPROXY_PORT": "99999"}),
    "up: daemon down": BadInput(("up",), "Docker daemon unreachable", env=NO_DAEMON),
    "up: a stack of yours already up": BadInput(
        ("up",), "a stack of yours is already up from this folder (x); run `pgchaos down` first",
        files={"state/runs/x/run.json": json.dumps({"run_id": "x", "owner_uid": os.getuid(),
                                                    "owner_cwd": str(REPO_ROOT)})}),
    "gc: daemon down": BadInput(("gc",), "Docker daemon unreachable", env=NO_DAEMON),
    "down: nothing up": BadInput(("down",), "no pgchaos stack is up"),
    "status: nothing up": BadInput(("status",), "no pgchaos stack is up"),
    "status: corrupt run.json": BadInput(("status",), "run.json", files={"state/runs/x/run.json": "{"}),
    "check: not JSON": BadInput(("check", "{tmp}/h.jsonl"), "line 2: invalid JSON",
                                files={"h.jsonl": OP + "\nnot json\n"}),
    "check: not an object": BadInput(("check", "{tmp}/h.jsonl"), "line 1: expected a JSON object, got list",
                                     files={"h.jsonl": "[1, 2]\n"}),
    "check: missing fields": BadInput(("check", "{tmp}/h.jsonl"), "line 1: missing field(s) 'time'",
                                      files={"h.jsonl": '{"index": 0}\n'}),
    "check: bad op type": BadInput(("check", "{tmp}/h.jsonl"), "'type' must be one of invoke, ok, fail, info",
                                   files={"h.jsonl": OP.replace('"invoke"', '"bogus"') + "\n"}),
    "check: time not a number": BadInput(("check", "{tmp}/h.jsonl"), "'time' must be a number",
                                         files={"h.jsonl": OP.replace("0.0", '"x"') + "\n"}),
    "check: not UTF-8": BadInput(("check", "{tmp}/h.jsonl"), "line 1", files={"h.jsonl": b"\xff\xfe\n"}),
    "check: unknown target row": BadInput(("check", "{tmp}/h.jsonl", "--target", "nope"),
                                          "unknown target row 'nope'; valid rows: ",
                                          files={"h.jsonl": OP + "\n"}),
    "check: no such file": BadInput(("check", "{tmp}/missing.jsonl"), "missing.jsonl"),
    "check: a folder": BadInput(("check", "{tmp}"), "{tmp}"),
    "inject: unknown fault": BadInput(("inject", "nope", "primary"), "unknown fault 'nope'; valid: kill, stop"),
    "inject: param without =": BadInput(("inject", "latency", "client", "--param", "300"),
                                        "--param takes key=value, not '300'"),
    "inject: param not a number": BadInput(("inject", "latency", "client", "--param", "latency=abc"),
                                           "latency='abc' is not a number"),
    "inject: param not finite": BadInput(("inject", "bandwidth", "client", "--param", "rate=nan"),
                                         "rate='nan' must be a finite number >= 0"),
    "inject: param the fault does not take": BadInput(("inject", "kill", "primary", "--param", "rate=3"),
                                                      "kill takes no parameter 'rate'; valid: signal"),
    "inject: bad stream": BadInput(("inject", "latency", "client", "--param", "stream=up"),
                                   "stream='up': valid: both, downstream, upstream"),
    "inject: nothing up": BadInput(("inject", "kill", "primary"), "no pgchaos stack is up"),
    "heal: neither id nor --all": BadInput(("heal",), "say which fault to heal"),
    "run: unknown scenario": BadInput(("run", "nope"), "unknown scenario 'nope'; valid: "),
    "drill: unknown drill": BadInput(("drill", "nope"), "unknown drill 'nope'; valid: coordinator-failure"),
    "drill: no terminal, no --yes": BadInput(("drill", "coordinator-failure"), "pass --yes"),
    "soak: minutes not positive": BadInput(("soak", "--minutes", "0"), "--minutes must be positive"),
    "unknown command": BadInput(("nope",), "invalid choice: 'nope'"),
}


def rows(table: dict[str, BadInput]) -> list[object]:
    """pytest params, one per row; known gaps are strict xfails."""
    return [pytest.param(row, id=name, marks=[pytest.mark.xfail(strict=True, reason=row.gap)] if row.gap else [])
            for name, row in table.items()]


def pgchaos(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=REPO_ROOT, timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("pgchaos: ") and needle in lines[0], lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("row", rows(CLI_ROWS))
def test_cli_bad_input(row: BadInput, tmp_path: Path, busy_port: int) -> None:
    def fill(text: str) -> str:
        return text.format(tmp=tmp_path, port=busy_port)

    for name, content in row.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    state = tmp_path / "state"
    env = {**BAD_INPUT_PORTS, "PGCHAOS_STATE_DIR": str(state), **{k: fill(v) for k, v in row.env.items()}}
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = pgchaos(*(fill(a) for a in row.args), env=env)
    assert_one_line_error(proc, fill(row.needle))
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before, "a bad input created files"


# -- a malformed targets table ----------------------------------------------------------
# tests/test_targets.py covers missing keys, bad values and bad waivers one by one;
# these are the file-level mistakes, checked in the library and at the CLI's surface.
ROW = '[a]\nsource = "pgchaos"\nrto_s = 10\nrpo_s = 0\n'
WAIVER = '[[waivers]]\nrow = "a"\nfaults = ["kill"]\nmetric = "rto_s"\nbound = 25\nreason = "why"\n'
TARGET_ROWS: dict[str, BadInput] = {
    "a folder": BadInput((), "cannot read targets file: Is a directory"),
    "binary garbage": BadInput((), "invalid TOML", files={"targets.toml": b"\x00\x01\x02"}),
    "not UTF-8": BadInput((), "", files={"targets.toml": b"\xff\xfe" + ROW.encode()}),
    "duplicate key": BadInput((), "invalid TOML: Cannot overwrite a value",
                              files={"targets.toml": ROW + "rto_s = 3\n"}),
    "duplicate row": BadInput((), "invalid TOML: Cannot declare ('a',) twice",
                              files={"targets.toml": ROW + ROW}),
    "waivers as one table": BadInput((), "'waivers' must be an array of tables ([[waivers]])",
                                     files={"targets.toml": ROW + '[waivers]\nrow = "a"\n'}),
    "waiver not a table": BadInput((), "waiver #1: expected a [[waivers]] table, got 1",
                                   files={"targets.toml": "waivers = [1]\n" + ROW}),
    "nested table in a row": BadInput((), "row 'a': unknown key(s) 'sub'",
                                      files={"targets.toml": ROW + "[a.sub]\nx = 1\n"}),
    "rto as a list": BadInput((), "row 'a': 'rto_s' must be a number, got [10]",
                              files={"targets.toml": ROW.replace("rto_s = 10", "rto_s = [10]")}),
    "infinite rto": BadInput((), "'rto_s' must be a finite number >= 0, got inf",
                             files={"targets.toml": ROW.replace("rto_s = 10", "rto_s = inf")}),
    "notes not text": BadInput((), "'notes' must be a non-empty string, got 3",
                               files={"targets.toml": ROW + "notes = 3\n"}),
    "faults as a string": BadInput((), "waiver #1: 'faults' must be a non-empty list",
                                   files={"targets.toml": ROW + WAIVER.replace('["kill"]', '"kill"')}),
}


@pytest.mark.parametrize("row", rows(TARGET_ROWS))
def test_malformed_targets_file(row: BadInput, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "targets.toml"
    if not row.files:
        path.mkdir()
    for name, content in row.files.items():
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(TargetsError) as err:
        load_targets(path)
    message = str(err.value)
    assert isinstance(err.value, PgchaosError)
    assert "\n" not in message and message.startswith(f"{path}: ") and row.needle in message

    # The same file as the repository's table: `pgchaos check --target` answers with that one line.
    history = tmp_path / "h.jsonl"
    history.write_text(OP + "\n")
    monkeypatch.setattr(targets_module, "DEFAULT_PATH", path)
    assert cli.main(["check", str(history), "--target", "a"]) == 2
    out = capsys.readouterr()
    assert out.err == f"pgchaos: {message}\n" and out.out == ""
