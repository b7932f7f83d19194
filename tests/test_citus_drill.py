"""The Citus runbook code without a stack: the DR test's cut of a pg_dumpall,
how recorded steps read, which drill plan a stack gets, and the drill's
one-line refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from harness.citus_runbooks import GUIDE, OBSERVED, WORKING, database_section, describe
from harness.gameday import DRILLS, drill_plan
from harness.stack.manifest import load_manifest
from harness.stack.spec import COMPOSE_DIR

DUMP = """\\restrict AAA
CREATE ROLE dpg_cluster;
\\unrestrict AAA
--
-- Database "shop" dump
--
\\restrict BBB
CREATE DATABASE shop WITH TEMPLATE = template0;
\\unrestrict BBB
\\connect shop
\\restrict BBB
CREATE TABLE public.users (id bigint);
COPY public.users (id) FROM stdin;
1
\\.
\\unrestrict BBB
--
-- Database "postgres" dump
--
\\connect postgres
\\restrict CCC
\\unrestrict CCC
"""


def test_database_section_is_the_one_database_without_a_connect() -> None:
    part = database_section(DUMP, "shop")
    assert part.startswith("\\restrict BBB\nCREATE TABLE public.users")
    assert part.endswith("\\unrestrict BBB\n") and "\\connect" not in part
    assert "CREATE DATABASE" not in part and "CREATE ROLE" not in part
    assert database_section(DUMP, "nope") == ""
    older = DUMP.replace("\\restrict BBB\n", "").replace("\\unrestrict BBB\n", "")  # pg_dump before 17.6
    part = database_section(older, "shop")  # ends at the next database's \connect
    assert "COPY public.users" in part and "\\connect" not in part and "CCC" not in part


def test_recorded_steps_read_as_findings_and_labelled_procedures() -> None:
    text = describe([
        {"step": "2. citus_remove_node", "source": GUIDE, "ok": False, "error": "XX000 cannot remove"},
        {"step": "1a. Patroni promoted", "source": OBSERVED, "ok": True, "moved": True},
        {"step": "W1. citus_drain_node", "source": WORKING, "ok": True, "result": [[""]]},
    ]).splitlines()
    assert text[0] == "2. citus_remove_node: FINDING (fails as written): XX000 cannot remove"
    assert text[1].startswith("1a. Patroni promoted [observed]: ok")
    assert text[2].startswith("W1. citus_drain_node [working procedure]: ok")


def test_reference_stack_gets_the_honestly_labelled_stand_in_steps() -> None:
    stack = SimpleNamespace(manifest=load_manifest(COMPOSE_DIR / "pgchaos.toml"))
    injected = []
    run = SimpleNamespace(nemesis=SimpleNamespace(inject=lambda f, t: injected.append((f, t))))
    plan = drill_plan(stack, "worker-failure", run)  # type: ignore[arg-type]
    assert plan.steps is DRILLS["worker-failure"]["steps"] and plan.cleanup is None
    assert "not run, this stack has no Citus" in plan.steps[1].title and plan.steps[1].run is None
    plan.inject()
    assert injected == [("kill", "worker-1")]


def test_drill_refuses_an_unknown_profile_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PGCHAOS_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "drill", "worker-failure", "--yes",
                           "--profile", "nope"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "pgchaos: unknown profile 'nope'; valid: local, citus"], proc.stderr
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "drill", "worker-failure", "--yes",
                           "--profile", "citus"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "no pgchaos stack is up" in proc.stderr, proc.stderr
