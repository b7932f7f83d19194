"""The catalogue split over several stacks (harness.split, `certify --stacks N`): the plan,
the parts' ports, the pytest option that keeps one part, and the merged report. No Docker."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import cli
from harness.errors import PgchaosError
from harness.split import (
    PORT_STEP,
    expected_walls,
    merge_parts,
    parse_part,
    part_env,
    plan,
    scenario_key,
)

pytest_plugins = ("pytester",)


@given(st.lists(st.floats(min_value=0, max_value=600), max_size=40), st.integers(min_value=1, max_value=8))
def test_the_plan_puts_every_item_in_one_part_and_stays_near_the_best_split(weights: list[float],
                                                                             parts: int) -> None:
    got = plan(weights, parts)
    assert len(got) == len(weights) and all(1 <= p <= parts for p in got)
    assert got == plan(list(weights), parts)  # every session computes the same plan
    loads = [sum(w for w, p in zip(weights, got, strict=True) if p == k) for k in range(1, parts + 1)]
    if weights:  # greedy bound: no part exceeds the average by more than the heaviest item
        assert max(loads) <= sum(weights) / parts + max(weights) + 1e-6


def test_the_plan_of_the_reference_catalogue_balances_two_stacks() -> None:
    walls = [51.8, 45.0, 34.1, 31.5, 31.0, 27.9, 19.8, 17.2, 14.2, 13.9, 13.2, 12.7, 12.0, 6.7]
    got = plan(walls, 2)
    loads = [sum(w for w, p in zip(walls, got, strict=True) if p == k) for k in (1, 2)]
    assert abs(loads[0] - loads[1]) <= 10, loads
    assert got[0] != got[1]  # the two longest go to different stacks


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/9", "2", "a/b", "1/0", ""])
def test_a_bad_part_is_one_clear_error(text: str) -> None:
    with pytest.raises(PgchaosError, match="K/N"):
        parse_part(text)


def test_parts_move_every_port_by_a_step_per_part() -> None:
    base = {"PGCHAOS_PGBOUNCER_PORT": "6432", "PGCHAOS_HEALTH_PORT": "8008"}
    assert part_env(1, base) == base
    assert part_env(3, base) == {"PGCHAOS_PGBOUNCER_PORT": str(6432 + 2 * PORT_STEP),
                                 "PGCHAOS_HEALTH_PORT": str(8008 + 2 * PORT_STEP)}
    with pytest.raises(PgchaosError, match="past 65535"):
        part_env(2, {"PGCHAOS_PGBOUNCER_PORT": "65000"})


def _summary(run: Path, rows: list[dict[str, Any]], when: float) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "summary.json").write_text(json.dumps(rows))
    os.utime(run / "summary.json", (when, when))


def test_expected_walls_take_the_newest_timing_of_each_scenario(tmp_path: Path) -> None:
    _summary(tmp_path / "20261201-000000", [{"scenario": "test_a", "wall_s": 10.0},
                                            {"scenario": "test_b", "wall_s": 7.0}], 1000)
    _summary(tmp_path / "certify-x" / "rep-1" / "stacks" / "2" / "run", [
        {"scenario": "test_a[sample2]", "wall_s": 30.0}, {"scenario": "test_c", "wall_s": None}], 2000)
    assert expected_walls(tmp_path) == {"test_a": 30.0, "test_b": 7.0}
    assert scenario_key("test_a[sample2]") == "test_a"


def _part_run(parts: Path, k: int, scenarios: dict[str, str]) -> Path:
    run = parts / str(k) / f"2026120{k}-000000"
    rows = []
    for name, verdict in scenarios.items():
        (run / name).mkdir(parents=True)
        (run / name / "verdict.json").write_text(json.dumps({"verdict": verdict, "rto_s": {"write": 1.0}}))
        rows.append({"scenario": name, "verdict": verdict, "reason": "", "wall_s": 5.0, "target_row": None,
                     "target_rto_s": None, "rto_write_s": 1.0, "rto_read_s": 1.0, "margin": None,
                     "target_rpo_s": None, "lost_writes": 0, "rpo_window_s": 0.0, "detect_s": None,
                     "resolve_s": None})
    (run / "summary.json").write_text(json.dumps(rows))
    (run / "run-info.json").write_text(json.dumps({"run": run.name, "stack": {"profile": "local"}}))
    return run


def test_the_parts_merge_into_one_run_with_every_scenario_and_one_page(tmp_path: Path) -> None:
    parts = tmp_path / "rep-1" / "stacks"
    _part_run(parts, 1, {"test_one": "pass", "test_two": "waived"})
    _part_run(parts, 2, {"test_three": "fail"})
    merged = tmp_path / "rep-1" / "merged"
    rows = merge_parts(parts, merged, stacks=2)
    assert [r["scenario"] for r in rows] == ["test_one", "test_two", "test_three"]
    assert json.loads((merged / "test_three" / "verdict.json").read_text())["verdict"] == "fail"
    assert (merged / "test_three").is_symlink() and not Path(os.readlink(merged / "test_three")).is_absolute()
    summary = (merged / "summary.md").read_text()
    assert "**3 executed" in summary and "2 identical stacks at once" in summary
    info = json.loads((merged / "run-info.json").read_text())
    assert info["stacks"]["count"] == 2 and len(info["stacks"]["runs"]) == 2
    page = (merged / "certification.html").read_text()
    assert "2 identical stacks at once" in page and "test_three" in page and ">fail<" in page
    assert "test_three" in (merged / "junit.xml").read_text()


def test_certify_over_two_stacks_merges_the_parts_and_judges_every_row(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.certify import certify

    seen: list[tuple[list[str], dict[str, str]]] = []

    def run_parts(jobs: list[tuple[list[str], list[str], dict[str, str], Path]]) -> list[int]:
        for k, (_, extra, env, log) in enumerate(jobs, 1):
            seen.append((extra, env))
            out = Path(extra[extra.index("--reports-dir") + 1])
            _part_run(out.parent, k, {f"test_part{k}": "marginal" if k == 2 else "pass"})
            log.write_text("1 passed in 1.00s\n")
        return [0, 0]

    monkeypatch.setenv("PGCHAOS_PGBOUNCER_PORT", "6500")
    status = certify(1, ["-k", "x"], lambda p, e: 1 / 0, tmp_path, stacks=2, run_parts=run_parts)
    assert status == 3  # the worst row over both parts: marginal
    assert [e[e.index("--pgchaos-split") + 1] for e, _ in seen] == ["1/2", "2/2"]
    assert [env["PGCHAOS_PGBOUNCER_PORT"] for _, env in seen] == ["6500", str(6500 + PORT_STEP)]
    assert all(e[-2:] == ["-k", "x"] for e, _ in seen)
    (merged,) = [p for p in tmp_path.glob("certify-*/rep-1/*") if p.name != "stacks"]
    assert {r["scenario"] for r in json.loads((merged / "summary.json").read_text())} == {"test_part1",
                                                                                         "test_part2"}


@pytest.mark.parametrize("extra", [["--attach"], ["--engine", "swarm"], ["--stacks", "9"]])
def test_certify_refuses_stacks_it_cannot_split(extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    args = ["certify", "--stacks", "2", *extra] if extra[0] != "--stacks" else ["certify", *extra]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--stacks" in err, err


def test_each_session_keeps_only_its_part(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_many="""
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_n(n):
            pass

        @pytest.mark.skip(reason="lacks it")
        def test_skipped():
            pass

        def test_long():
            pass
    """)
    weights = pytester.path / "walls.json"
    weights.write_text(json.dumps({"test_long": 100.0, "test_n": 10.0}))
    ran = []
    for k in (1, 2):
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", "--pgchaos-split", f"{k}/2",
                                               "--pgchaos-split-weights", str(weights))
        ran.append({ln.split("::")[1].split(" ")[0] for ln in result.outlines if "::" in ln and
                    ("PASSED" in ln or "SKIPPED" in ln)})
    assert ran[0].isdisjoint(ran[1]) and len(ran[0] | ran[1]) == 8
    long_part = 0 if "test_long" in ran[0] else 1
    assert not any(n.startswith("test_n") for n in ran[long_part])  # 100 s against six of 10 s
    # the split is made after -k: two tests selected, one on each part
    picked = [pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "test_n and (0 or 1)",
                                            "--pgchaos-split", f"{k}/2").parseoutcomes().get("passed")
              for k in (1, 2)]
    assert picked == [1, 1]
    bad = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--pgchaos-split", "3/2")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR and "K/N" in bad.stderr.str()


def test_the_parts_lock_runs_an_exclusive_scenario_alone_and_first(tmp_path: Path) -> None:
    import threading
    import time

    from harness.split import PartsLock

    lock, order, release = PartsLock(tmp_path / "parts.lock"), [], {k: threading.Event() for k in "ABC"}

    def part(name: str, exclusive: bool) -> None:
        with lock.hold(exclusive):
            order.append(name)
            release[name].wait(10)

    first = threading.Thread(target=part, args=("A", False))
    first.start()
    time.sleep(0.2)
    threads = [threading.Thread(target=part, args=("B", True))]
    threads[0].start()
    time.sleep(0.3)  # B waits for A; C, asking after B, waits behind B
    threads.append(threading.Thread(target=part, args=("C", False)))
    threads[1].start()
    time.sleep(0.3)
    assert order == ["A"]
    release["A"].set()
    time.sleep(0.3)
    assert order == ["A", "B"]  # alone: C is still out
    release["B"].set()
    release["C"].set()
    for t in [first, *threads]:
        t.join(10)
    assert order == ["A", "B", "C"]


def test_two_shared_holders_run_together(tmp_path: Path) -> None:
    import threading

    from harness.split import PartsLock

    lock, inside = PartsLock(tmp_path / "parts.lock"), threading.Event()

    def second() -> None:
        with lock.hold(False):
            inside.set()

    with lock.hold(False):
        other = threading.Thread(target=second, daemon=True)
        other.start()
        assert inside.wait(5), "a second shared holder waited for the first"
    other.join(5)


def test_the_shipped_walls_cover_the_reference_catalogue() -> None:
    from harness.split import shipped_walls

    walls = shipped_walls()
    assert {"test_coordinator_hard_loss", "test_complete_cluster_loss", "test_leader_partition"} <= set(walls)
    assert all(0 < w < 600 for w in walls.values())



PART_TEST = """
import os, time
from pathlib import Path

def test_part():
    began = time.time()
    Path(os.environ["PART_SPAN"] + ".began").write_text("")
    time.sleep(float(os.environ.get("PART_SLEEP", "0")))
    Path(os.environ["PART_SPAN"]).write_text(f"{began} {time.time()}")
    assert os.environ["PART"] == "1"
"""


def test_the_parts_run_at_once_each_with_its_environment_and_log(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "test_part.py").write_text(PART_TEST)
    monkeypatch.setattr(cli.assets, "assets_root", lambda: tmp_path)
    jobs = [(["test_part.py"], ["-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path)],
             {"PART": str(k), "PART_SLEEP": "2", "PART_SPAN": str(tmp_path / f"span{k}")},
             tmp_path / f"part{k}.log") for k in (1, 2)]
    assert cli._pytest_parts(jobs) == [0, 1]  # part 2's environment reached its session
    (b1, e1), (b2, e2) = ([float(x) for x in (tmp_path / f"span{k}").read_text().split()] for k in (1, 2))
    assert b1 < e2 and b2 < e1  # at once: their sleeps overlap
    assert "1 passed" in (tmp_path / "part1.log").read_text()
    assert "1 failed" in (tmp_path / "part2.log").read_text()
    assert cli._last_line(tmp_path / "part2.log").startswith("1 failed in ")


def test_ctrl_c_reaches_every_part_and_waits_for_them(tmp_path: Path) -> None:
    """Started in the background (SIGINT not from a terminal), pgchaos passes the interrupt to
    each part and returns once both have ended."""
    import contextlib
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "test_part.py").write_text(PART_TEST)
    driver = tmp_path / "driver.py"
    driver.write_text(f"""
import sys
from pathlib import Path
from harness import cli
cli.assets.assets_root = lambda: Path({str(tmp_path)!r})
jobs = [(["test_part.py"], ["-q", "-p", "no:cacheprovider", "--rootdir", {str(tmp_path)!r}],
         {{"PART": "1", "PART_SLEEP": "60", "PART_SPAN": str(Path({str(tmp_path)!r}) / f"span{{k}}")}},
         Path({str(tmp_path)!r}) / f"part{{k}}.log") for k in (1, 2)]
print("codes", cli._pytest_parts(jobs), flush=True)
""")
    # SIGINT as a terminal gives it, even where this session runs as a background job (SIG_IGN)
    proc = subprocess.Popen([sys.executable, str(driver)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=cli._default_sigint)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all((tmp_path / f"span{k}.began").exists() for k in (1, 2)):
            time.sleep(0.2)  # both sessions are running their test
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert "interrupted; waiting for every part" in err, err
    assert "codes [2, 2]" in out, (out, err)  # pytest's exit status for an interrupted session
    for k in (1, 2):
        assert "KeyboardInterrupt" in (tmp_path / f"part{k}.log").read_text()


def test_a_part_that_wrote_no_report_is_an_error_of_the_merged_run(tmp_path: Path) -> None:
    parts = tmp_path / "rep-1" / "stacks"
    _part_run(parts, 1, {"test_one": "pass"})
    (parts / "2").mkdir(parents=True)  # its session died before any verdict
    rows = merge_parts(parts, tmp_path / "rep-1" / "merged", stacks=2)
    assert {r["scenario"]: r["verdict"] for r in rows} == {"part 2 of 2": "error", "test_one": "pass"}
    assert "wrote no report" in (tmp_path / "rep-1" / "merged" / "summary.md").read_text()
