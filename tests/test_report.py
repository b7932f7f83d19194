"""Reports without Docker: the timeline picture, re-judging a run, junit.xml, allure."""

from __future__ import annotations

import json
import struct
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.errors import PgchaosError
from harness.history import Op, write_history
from harness.report import allure_report
from harness.report.allure_report import AllureObserver, generate_html
from harness.report.junit import write_junit
from harness.report.rebuild import main_report, rebuild_run
from harness.report.timeline import (
    STALL_GID,
    Timeline,
    bin_width,
    build_figure,
    fault_span_count,
    render_timeline,
)
from harness.targets import load_targets
from harness.verdict import check_history

pytest_plugins = ("pytester",)

ROW = "coordinator-failure"  # rto_s 10; kill waived up to 25 s


def outage(
    faults: tuple[tuple[float, float, float | None], ...] = ((5.0, 21.0, 30.0),),
    end: float = 40.0,
    *,
    hang_s: float = 0.0,
    lose_one: bool = False,
    observed: bool = True,
) -> list[Op]:
    """Writes and reads every 0.1 s, vector searches every 0.5 s, then a final read-all.

    Each fault is (time, outage_s, heal time or None): ops fail for outage_s
    after it, and for its first ``hang_s`` the op under way hangs (each
    process blocks) and fails at the end of it. With ``observed``, the observer
    records each fault's effect.
    """
    rows: list[tuple[float, int | str, str, str, Any]] = []
    acked: list[int] = []
    for n, (fault_t, _, heal_t) in enumerate(faults):
        rows.append((fault_t, "nemesis", "info", "kill", {"target": "coordinator-1"}))
        if observed:  # value["fault"]: the fault's position, renumbered to its index below
            rows.append((fault_t + 0.001, "observer", "ok", "fault-effect",
                         {"fault": -1 - n, "target": "coordinator-1", "evidence": "not running"}))
        if heal_t is not None:
            rows.append((heal_t, "nemesis", "info", "heal", {"target": "coordinator-1"}))
    busy: dict[int, float] = {}
    for step in range(int(end * 10)):
        t = 0.5 + step * 0.1
        down = next((ft for ft, out, _ in faults if ft < t <= ft + out), None)
        hung = down is not None and t <= down + hang_s
        kinds = [(1, "write"), (2, "read")] + ([(3, "vector-search")] if step % 5 == 0 else [])
        for process, f in kinds:
            if t < busy.get(process, 0.0):
                continue
            done = down + hang_s + 0.01 * process if hung and down is not None else t + 0.01
            busy[process] = done
            value = step if f == "write" else None
            rows.append((t, process, "invoke", f, value))
            rows.append((done, process, "ok" if down is None else "fail", f, value))
            if f == "write" and down is None:
                acked.append(step)
    rows.append((end + 1, 9, "invoke", "read-all", None))
    rows.append((end + 1.2, 9, "ok", "read-all", acked[1:] if lose_one else acked))
    rows.sort(key=lambda r: r[0])
    ops = [Op(i, t, p, typ, f, v) for i, (t, p, typ, f, v) in enumerate(rows)]  # type: ignore[arg-type]
    fault_indices = [op.index for op in ops if op.process == "nemesis" and op.f != "heal"]
    for op in ops:
        if op.process == "observer":
            op.value["fault"] = fault_indices[-1 - op.value["fault"]]
    return ops


def judged(ops: list[Op], scenario: str, row: str | None = ROW, **extra: Any) -> dict[str, Any]:
    """A verdict.json as the scenario runner writes it."""
    targets = load_targets()
    target = targets.row(row) if row else None
    v = check_history(ops, target, targets.waivers_for(row) if row else [])
    v.update({"scenario": scenario, "wall_s": 42.0, "figures": {"old_leader": "coordinator-1"},
              "steady_state": {"before": True, "after": True}, "log_alerts": [],
              "phases": [{"phase": "steady-state-before", "time": 0.0}, {"phase": "load-start", "time": 0.5},
                         {"phase": "observed", "time": 20.0, "what": "new leader", "after_s": 15.0},
                         {"phase": "load-stop", "time": 40.5}, {"phase": "final-read", "time": 41.0},
                         {"phase": "verdict", "time": 41.3}],
              "probe": {"write": {"ops": 400, "mean_period_s": 0.1}}})
    v.update(extra)
    return v


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


# -- timeline -----------------------------------------------------------------------


def test_timeline_png_of_a_known_outage(tmp_path: Path) -> None:
    ops = outage(hang_s=8.0)
    write_history(tmp_path / "history.jsonl", ops)
    verdict = judged(ops, "synthetic_kill")
    assert verdict["verdict"] == "waived"
    out = render_timeline(tmp_path / "history.jsonl", verdict, tmp_path / "timeline.png")
    assert out == tmp_path / "timeline.png"
    width, height = png_size(out)
    assert (width, height) >= (1000, 700)
    assert 30_000 < out.stat().st_size < 2_000_000


def test_figure_shades_each_fault_and_marks_stalls() -> None:
    ops = outage(((5.0, 3.0, 9.0), (20.0, 30.0, None)), end=60.0, hang_s=2.0)
    verdict = judged(ops, "two_faults")  # the second outage is past the 25 s waiver
    fig = build_figure(Timeline.from_ops(ops), verdict)
    assert fault_span_count(fig) == 2
    stalls = [p for ax in fig.axes for p in ax.collections if p.get_gid() == STALL_GID]
    assert len(stalls) >= 4  # both faults hang writes and reads
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any(t.startswith("write RTO ") for t in texts)
    assert any("target 10 s" in t for t in texts)
    assert "TWO_FAULTS" in fig.get_suptitle().upper() and "FAIL" in fig.get_suptitle()


def test_timeline_without_verdict_takes_faults_from_the_history(tmp_path: Path) -> None:
    ops = outage()
    write_history(tmp_path / "history.jsonl", ops)
    fig = build_figure(Timeline.from_file(tmp_path / "history.jsonl"))
    assert fault_span_count(fig) == 1
    assert "not judged" in fig.get_suptitle()
    render_timeline(tmp_path / "history.jsonl", None, tmp_path / "t.png")
    assert png_size(tmp_path / "t.png")[0] > 0


def test_rates_are_completions_per_second() -> None:
    ops = outage(((5.0, 2.0, 8.0),), end=10.0)
    tl = Timeline.from_ops(ops)
    rates = tl.rates(1.0, 12)
    ok, fail, info = rates["write"]
    assert ok[2] == pytest.approx(10.0) and fail[2] == 0
    assert fail[6] == pytest.approx(10.0) and ok[6] == 0
    assert info.sum() == 0
    assert float(rates["write"].sum()) == pytest.approx(sum(o.f == "write" and o.type != "invoke" for o in ops))
    assert list(tl.in_flight(["write"], np.array([0.0, 0.505, 0.515]))) == [0, 1, 0]


def test_bin_width_keeps_the_picture_coarse_enough() -> None:
    assert bin_width(30.0) == 0.25
    assert bin_width(600.0) == 5.0
    assert 86_400 / bin_width(86_400.0) <= 160


def test_timeline_of_a_large_history_is_fast(tmp_path: Path) -> None:
    n = 200_000
    path = tmp_path / "history.jsonl"
    with open(path, "w") as fh:
        fh.write('{"index":0,"time":100.0,"process":"nemesis","type":"info","f":"kill","value":{"target":"a"}}\n')
        for i in range(1, n):
            t = i * 0.003
            typ = "invoke" if i % 2 else ("fail" if 100 < t < 130 else "ok")
            fh.write(f'{{"index":{i},"time":{t},"process":{i % 4 // 2},"type":"{typ}",'
                     f'"f":"{"write" if i % 4 < 2 else "read"}","value":{i}}}\n')
    start = time.monotonic()
    render_timeline(path, None, tmp_path / "t.png")
    assert time.monotonic() - start < 20.0


# -- rebuild and junit ----------------------------------------------------------------


def make_run(root: Path) -> Path:
    run = root / "20260101-000000"
    scenarios: dict[str, tuple[list[Op], dict[str, Any] | None]] = {}
    ops = outage()
    scenarios["kill_waived"] = (ops, judged(ops, "kill_waived"))
    ops = outage(((5.0, 3.0, 9.0),))
    forced = judged(ops, "steady_state_broken")
    forced["reasons"] = ["steady state did not return after heal-all: replica lag"] + forced["reasons"]
    forced["verdict"], forced["valid"] = "fail", False
    forced["steady_state"]["after"] = False
    scenarios["steady_state_broken"] = (ops, forced)
    ops = outage(((5.0, 3.0, 9.0),), lose_one=True)
    scenarios["lost_write"] = (ops, judged(ops, "lost_write"))
    ops = outage(((5.0, 3.0, 9.0),))
    scenarios["no_old_verdict"] = (ops, None)
    split = judged(ops, "split_brain", scenario_checks={
        "split-brain": {"valid": False, "reason": "coordinator-1 and coordinator-2 writable at 24.7 s"}})
    split["reasons"] = ["split-brain: coordinator-1 and coordinator-2 writable at 24.7 s"] + split["reasons"]
    split["verdict"], split["valid"] = "fail", False
    scenarios["split_brain"] = (ops, split)
    unjudged = judged(ops, "check_unjudged",
                      scenario_checks={"split-brain": {"valid": "unknown", "error": "no samples"}})
    scenarios["check_unjudged"] = (ops, unjudged)
    for name, (ops, verdict) in scenarios.items():
        d = run / name
        d.mkdir(parents=True)
        write_history(d / "history.jsonl", ops)
        if verdict is not None:
            (d / "verdict.json").write_text(json.dumps(verdict))
    skipped = run / "citus_rebalance"
    skipped.mkdir()
    (skipped / "verdict.json").write_text(json.dumps(
        {"scenario": "citus_rebalance", "verdict": "skipped", "reasons": ["needs the citus profile"]}))
    broken = run / "torn_history"
    broken.mkdir()
    (broken / "history.jsonl").write_text('{"index":0,"time":1.0,"process":1,"type":"invoke"\n')
    (broken / "verdict.json").write_text(json.dumps({"scenario": "torn_history", "target": {"row": ROW}}))
    (run / "not-a-scenario").mkdir()
    return run


def test_rebuild_rejudges_and_keeps_the_run_fields(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    originals = {p: p.read_bytes() for p in run.glob("*/verdict.json")}
    rows = rebuild_run(run)
    assert {p: p.read_bytes() for p in run.glob("*/verdict.json")} == originals  # never overwritten
    by = {r["scenario"]: r for r in rows}
    assert set(by) == {"kill_waived", "steady_state_broken", "lost_write", "no_old_verdict", "split_brain",
                       "check_unjudged", "citus_rebalance", "torn_history"}
    assert by["split_brain"]["verdict"] == "fail" and by["split_brain"]["reason"].startswith("split-brain: ")
    assert by["check_unjudged"]["verdict"] == "unknown"
    assert by["check_unjudged"]["reason"] == "split-brain could not judge: no samples"
    assert by["kill_waived"]["verdict"] == "waived" and by["kill_waived"]["target_row"] == ROW
    assert by["kill_waived"]["rto_write_s"] == pytest.approx(21.0, abs=0.2)
    assert by["steady_state_broken"]["verdict"] == "fail"
    assert by["steady_state_broken"]["reason"].startswith("steady state did not return")
    assert by["lost_write"]["verdict"] == "fail" and by["lost_write"]["lost_writes"] == 1
    assert by["no_old_verdict"]["verdict"] == "unjudged" and by["no_old_verdict"]["target_row"] is None
    assert by["torn_history"]["verdict"] == "unknown"
    assert "history could not be read" in by["torn_history"]["reason"]
    assert by["citus_rebalance"]["verdict"] == "skipped"
    assert json.loads((run / "summary.json").read_text()) == json.loads(json.dumps(rows))

    kept = json.loads((run / "kill_waived" / "verdict.rebuilt.json").read_text())
    assert kept["rebuilt"]["original_verdict"] == "waived"
    assert kept["checkers"]["fault-effect"]["valid"] is True
    split = json.loads((run / "split_brain" / "verdict.rebuilt.json").read_text())
    assert split["scenario_checks"]["split-brain"]["source"] == "recorded"
    assert split["checkers"]["split-brain"] == {
        "valid": False, "reason": "coordinator-1 and coordinator-2 writable at 24.7 s", "source": "recorded"}
    assert [p["phase"] for p in kept["phases"]][:2] == ["steady-state-before", "load-start"]
    assert kept["figures"] == {"old_leader": "coordinator-1"} and kept["wall_s"] == 42.0
    assert kept["probe"]["write"]["ops"] == 400
    for name in ("kill_waived", "steady_state_broken", "lost_write", "no_old_verdict"):
        assert png_size(run / name / "timeline.rebuilt.png")[0] > 0
        assert not (run / name / "timeline.png").exists()
    assert not (run / "torn_history" / "timeline.rebuilt.png").exists()
    assert not (run / "citus_rebalance" / "verdict.rebuilt.json").exists()


def test_rebuild_runs_the_same_pipeline_as_the_live_run(tmp_path: Path) -> None:
    """The rebuilt verdict of a scenario is check_history's over the same history and inputs."""
    run = make_run(tmp_path)
    rebuild_run(run)
    for name in ("kill_waived", "lost_write"):
        old = json.loads((run / name / "verdict.json").read_text())
        new = json.loads((run / name / "verdict.rebuilt.json").read_text())
        for key in ("verdict", "rto_s", "rpo", "faults", "reasons", "checkers", "gap_s", "waivers"):
            assert new[key] == old[key], (name, key)


def test_rebuild_honours_a_targets_file_and_the_backup_age(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    strict = tmp_path / "strict.toml"
    strict.write_text(f'[{ROW}]\nsource = "pgchaos"\nrto_s = 2\nrpo_s = 0\n')
    rows = {r["scenario"]: r for r in rebuild_run(run, strict)}
    assert rows["steady_state_broken"]["verdict"] == "fail"
    rebuilt = json.loads((run / "lost_write" / "verdict.rebuilt.json").read_text())
    assert any("target 2.000 s" in r for r in rebuilt["reasons"])
    assert rows["kill_waived"]["verdict"] == "fail"  # no waiver in that table
    # the backup age comes from the run's figures
    ops = outage(((5.0, 3.0, 9.0),), lose_one=True)
    d = tmp_path / "dr" / "cluster_loss"
    d.mkdir(parents=True)
    write_history(d / "history.jsonl", ops)
    old = judged(ops, "cluster_loss", row="complete-cluster-loss")
    old["figures"] = {"backup_age_s": 90000.0}
    (d / "verdict.json").write_text(json.dumps(old))
    (row,) = rebuild_run(tmp_path / "dr")
    assert row["verdict"] == "fail" and row["backup_age_s"] == 90000.0


def test_rebuild_twice_is_stable(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    first = rebuild_run(run)
    assert rebuild_run(run) == first


def test_junit_of_a_rebuilt_run(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    rebuild_run(run)
    root = ET.parse(run / "junit.xml").getroot()
    suite = root.find("testsuite")
    assert suite is not None
    # no_old_verdict has no target row: unjudged is a failure in JUnit, never a pass
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("8", "6", "1")
    assert cases_of(suite)["no_old_verdict"].find("failure").get("type") == "unjudged"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    waived = cases["kill_waived"]
    assert waived.find("failure") is None and waived.find("skipped") is None
    props = {p.get("name"): p.get("value") for p in waived.iter("property")}
    assert props["verdict"] == "waived" and "ttl" in props["waiver"]
    assert float(props["rto_write_s"]) == pytest.approx(21.0, abs=0.2)
    assert props["target_rto_s"] == "10.000"
    failure = cases["steady_state_broken"].find("failure")
    assert failure is not None and failure.get("type") == "fail"
    assert "steady state" in (failure.get("message") or "")
    unknown = cases["torn_history"].find("failure")
    assert unknown is not None and unknown.get("type") == "unknown"
    assert cases["citus_rebalance"].find("skipped") is not None


def test_junit_escapes_and_counts(tmp_path: Path) -> None:
    rows = [{"scenario": "a<b>&c", "verdict": "fail", "reason": 'quote " and <tag>', "wall_s": 1.5},
            {"scenario": "b", "verdict": "pass", "reason": "", "wall_s": None}]
    write_junit(rows, tmp_path / "j.xml")
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert root.get("failures") == "1" and root.get("tests") == "2" and root.get("time") == "1.500"
    assert root.find("testsuite/testcase/failure").text == 'quote " and <tag>'  # type: ignore[union-attr]


def test_main_report_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main_report(str(make_run(tmp_path))) == 1
    assert "| kill_waived |" in capsys.readouterr().out
    good = tmp_path / "good" / "run"
    (good / "s").mkdir(parents=True)
    write_history(good / "s" / "history.jsonl", outage(((5.0, 3.0, 9.0),)))
    assert main_report(str(good)) == 4  # no target row: measured, not judged
    (good / "s" / "verdict.json").write_text(json.dumps({"target": {"row": ROW}}))
    assert main_report(str(good)) == 0
    with pytest.raises(PgchaosError, match="no such run directory"):
        main_report(str(tmp_path / "missing"))
    with pytest.raises(PgchaosError, match="no scenario directory"):
        main_report(str(tmp_path / "good"))


# -- allure -------------------------------------------------------------------------


def observe(scenario_dir: Path) -> None:
    obs = AllureObserver()
    obs.labels("coordinator failover", "critical", "kill_waived")
    for name in ("steady-state-before", "load-start", "inject kill coordinator-1"):
        obs.phase(name)
    obs.phase("observed", what="a leader other than coordinator-1", after_s=20.5)
    obs.phase("verdict")
    obs.attach_scenario(scenario_dir, judged(outage(), "kill_waived"), failed=True)
    obs.close(RuntimeError("boom"))
    with obs:
        obs.phase("wait", seconds=4)


def test_allure_observer_is_a_no_op_without_a_listener(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run(tmp_path)
    monkeypatch.setattr(allure_report, "allure_active", lambda: False)
    obs = AllureObserver()
    obs.phase("load-start")
    assert obs._step is None
    observe(run / "kill_waived")
    assert not (run / "kill_waived" / "timeline.png").exists()  # nothing rendered for nobody


def test_allure_observer_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run(tmp_path)
    (run / "kill_waived" / "logs").mkdir()
    (run / "kill_waived" / "logs" / "coordinator-1.log").write_text("PANIC\n")
    observe(run / "kill_waived")  # real allure, active or not

    class Broken:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError(f"allure broke at {name}")

    monkeypatch.setattr(allure_report, "allure_active", lambda: True)
    monkeypatch.setattr(allure_report, "allure", Broken())
    observe(run / "kill_waived")


def test_allure_steps_and_attachments_only_with_alluredir(pytester: pytest.Pytester, tmp_path: Path) -> None:
    scenario = make_run(tmp_path) / "kill_waived"
    pytester.makepyfile(f"""
        import json
        from pathlib import Path
        from harness.report.allure_report import AllureObserver, allure_active

        def test_scenario():
            print("ACTIVE", allure_active())
            d = Path({str(scenario)!r})
            obs = AllureObserver()
            obs.labels("failover", "critical", "kill_waived")
            obs.phase("load-start")
            obs.phase("inject kill coordinator-1")
            obs.attach_scenario(d, json.loads((d / "verdict.json").read_text()), False)
    """)
    plain = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider", "-p", "no:pgchaos")
    plain.assert_outcomes(passed=1)
    assert "ACTIVE False" in plain.stdout.str()
    results = tmp_path / "allure-results"
    recorded = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider", f"--alluredir={results}")
    recorded.assert_outcomes(passed=1)
    assert "ACTIVE True" in recorded.stdout.str()
    [result] = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    assert [s["name"] for s in result["steps"]] == ["load-start", "inject kill coordinator-1"]
    names = {a["name"] for a in result["attachments"]}
    assert {"verdict.json", "timeline.png", "history.jsonl"} <= names
    assert {"name": "severity", "value": "critical"} in result["labels"]


def test_generate_html_explains_when_allure_is_missing(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allure_report.shutil, "which", lambda name: None)
    message = generate_html(tmp_path / "results", tmp_path / "html")
    assert "npm install -g allure-commandline" in message and "\n" not in message
    monkeypatch.setattr(allure_report.shutil, "which", lambda name: "/nonexistent/" + name)
    message = generate_html(tmp_path / "results", tmp_path / "html")
    assert "no allure results" in message
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x-result.json").write_text("{}")
    assert "could not run" in generate_html(tmp_path / "results", tmp_path / "html")


def cases_of(suite: ET.Element) -> dict[str | None, ET.Element]:
    return {c.get("name"): c for c in suite.iter("testcase")}


def test_summary_and_junit_say_error_skip_marginal_and_count_them(tmp_path: Path) -> None:
    """An errored scenario is "error" in every artifact; skips are listed; counts are stated."""
    from harness.report.junit import write_junit
    from harness.report.summary import write_summary

    verdicts = [
        {"scenario": "raised", "verdict": "error", "reasons": ["error: PgchaosError: unknown target 'etcd'"]},
        {"scenario": "citus", "verdict": "skipped", "reasons": ["no Citus package"]},
        {"scenario": "close[sample1]", "verdict": "marginal", "rto_s": {"write": 9.52},
         "margins": [{"kind": "write", "measured_s": 9.52, "bound_s": 10.0, "against": "target", "ratio": 0.952}]},
        {"scenario": "close[sample2]", "verdict": "pass", "rto_s": {"write": 4.1}},
    ]
    rows = write_summary(verdicts, tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "**3 executed, 1 skipped, 1 errored**" in text
    assert "| raised |" in text and "**error**" in text and "95% of 10 s" in text
    assert "citus** (skipped): no Citus package" in text
    assert "| close | 2 | marginal, pass | **marginal** | **yes** | 4.1 / 6.8 / 9.5 s" in text
    counts = json.loads((tmp_path / "summary-counts.json").read_text())
    assert counts["executed"] == 3 and counts["errored"] == 1 and counts["samples"]["close"]["flaky"]
    suite = ET.parse(write_junit(rows, tmp_path / "junit.xml")).getroot().find("testsuite")
    assert suite is not None and suite.get("errors") == "1" and suite.get("skipped") == "1"
    cases = cases_of(suite)
    assert cases["raised"].find("error") is not None and cases["raised"].find("failure") is None
    assert cases["close[sample1]"].find("failure") is None
    strict = ET.parse(write_junit(rows, tmp_path / "strict.xml", marginal_fails=True)).getroot()
    assert cases_of(strict)["close[sample1]"].find("failure") is not None
    nothing = write_summary([verdicts[1]], tmp_path / "none")
    assert nothing[0]["verdict"] == "skipped"
    assert "Nothing was certified" in (tmp_path / "none" / "summary.md").read_text()


def test_time_breakdown_from_the_run_phases(tmp_path: Path) -> None:
    from harness.report.breakdown import breakdown, overhead_share
    from harness.report.summary import write_summary

    phases = [{"phase": "steady-state-before", "time": 0.0}, {"phase": "load-start", "time": 3.0},
              {"phase": "inject stop c1", "time": 5.0, "fault": "f1"},
              {"phase": "alert-fired", "time": 9.0, "after_s": 4.0},
              {"phase": "inject pause c2", "time": 8.0, "fault": "f2"},  # overlaps the first
              {"phase": "heal stop c1", "time": 12.0, "fault": "f1"},
              {"phase": "heal pause c2", "time": 14.0, "fault": "f2"}, {"phase": "load-stop", "time": 15.0},
              {"phase": "heal-all", "time": 15.1}, {"phase": "alerts-resolve", "time": 20.0},
              {"phase": "alerts-resolved", "time": 25.0}, {"phase": "final-read", "time": 25.1}]
    b = breakdown(phases, 28.0)
    assert b == {"in fault": 9.0, "after heal": 1.0, "procedure": 0.0, "settling": 4.9, "resolving alerts": 5.0,
                 "overhead": 8.1, "detecting": 4.0, "wall": 28.0}
    assert overhead_share(b) == pytest.approx(8.1 / 28.0)
    assert breakdown([], 3.0) is None
    write_summary([{"scenario": "s", "verdict": "pass", "phases": phases, "wall_s": 28.0}], tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "| s | 9.0 | 1.0 | 0.0 | 4.9 | 5.0 | 8.1 | 4.0 | 28.0 |" in text
    assert "Overhead: 29% of the wall time." in text
    # a restore the scenario runs itself (no injected fault): its procedure, not the harness's overhead
    restore = [{"phase": "steady-state-before", "time": 0.0}, {"phase": "load-start", "time": 1.0},
               {"phase": "backup", "time": 4.0}, {"phase": "load-pause", "time": 7.0},
               {"phase": "restore", "time": 20.0}, {"phase": "load-stop", "time": 30.0},
               {"phase": "heal-all", "time": 30.0}, {"phase": "final-read", "time": 31.0}]
    r = breakdown(restore, 32.0)
    assert r is not None and r["procedure"] == 26.0 and r["overhead"] == 5.0 and r["in fault"] == 0.0
