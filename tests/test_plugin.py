"""The pytest plugin in sessions of its own (pytester): inert when unused, prefixed
options with their old spellings, a wrong target row stopped before any stack, and
a failing verdict failing its test without an assert. No Docker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest_plugins = ("pytester",)

NO_CACHE = ("-p", "no:cacheprovider")
PYTESTER_OWN = ("stdout", "stderr", "runpytest-current")  # pytester's capture files and basetemp


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if "__pycache__" not in p.parts and p.relative_to(root).parts[0] not in PYTESTER_OWN
            and not p.relative_to(root).parts[0].startswith("runpytest-")}


def test_a_session_that_uses_nothing_of_the_plugin_writes_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_one():\n    assert 1 == 1\n")
    before = files_under(pytester.path)
    result = pytester.runpytest_subprocess(*NO_CACHE)
    result.assert_outcomes(passed=1)
    assert files_under(pytester.path) == before  # no reports/, no allure results


def test_prefixed_options_and_their_old_spellings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_opts="""
        def test_opts(pytestconfig):
            print("OPTS", pytestconfig.getoption("pgchaos_timeout_mult"), pytestconfig.getoption("pgchaos_seed"),
                  pytestconfig.getoption("pgchaos_users"))
    """)
    new = pytester.runpytest_subprocess(*NO_CACHE, "-s", "--pgchaos-timeout-multiplier", "1.5",
                                        "--pgchaos-seed", "7", "--pgchaos-load-users", "0")
    new.assert_outcomes(passed=1)
    assert "OPTS 1.5 7 0" in new.stdout.str()
    old = pytester.runpytest_subprocess(*NO_CACHE, "-s", "--timeout-multiplier", "2", "--seed", "8",
                                        "--load-users", "1")
    old.assert_outcomes(passed=1)
    assert "OPTS 2.0 8 1" in old.stdout.str()


def test_a_wrong_target_row_fails_before_any_stack(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import pytest
        from pathlib import Path

        @pytest.fixture(scope="session")
        def pgchaos_stack():
            Path("STACK-STARTED").write_text("")
            raise RuntimeError("no stack in this test")
    """)
    pytester.makepyfile(test_row="""
        import pytest

        @pytest.mark.scenario
        @pytest.mark.target("no-such-row")
        def test_bad_row(scenario_run):
            with scenario_run():
                pass
    """)
    result = pytester.runpytest_subprocess(*NO_CACHE)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*target('no-such-row') is not a row of *targets.toml; valid rows: *"])
    assert not (pytester.path / "STACK-STARTED").exists()
    # a session that runs scenarios records allure results under ./reports/allure
    assert list((pytester.path / "reports" / "allure").glob("*-result.json"))


def test_a_failing_verdict_fails_the_test_without_an_assert(pytester: pytest.Pytester, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    pytester.makepyfile(test_verdicts=f"""
        from pathlib import Path
        from harness.plugin import RUNS_KEY

        class Run:  # what scenario_run stashes: a ScenarioRun with its verdict
            observer = None

            def __init__(self, name, verdict):
                self.name, self.dir = name, Path({str(reports)!r}) / "run-1" / name
                self.verdict = {{"scenario": name, "verdict": verdict, "reasons": ["RTO 31 s > 10 s"],
                                "rto_s": {{}}, "rpo": {{}}, "history": str(self.dir / "history.jsonl")}}

        def test_failing(request):
            request.node.stash[RUNS_KEY] = [Run("failing", "fail")]

        def test_waived(request):
            request.node.stash[RUNS_KEY] = [Run("waived", "waived")]
    """)
    result = pytester.runpytest_subprocess(*NO_CACHE, "--pgchaos-reports-dir", str(reports))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*pgchaos verdict of failing: failing: fail*", "*RTO 31 s > 10 s*"])
    assert (reports / "run-1" / "summary.json").exists()


def test_errors_skips_and_failed_asserts_are_never_pass_in_the_summary(pytester: pytest.Pytester,
                                                                      tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    pytester.makepyfile(test_errors=f"""
        import json
        from pathlib import Path
        import pytest
        from harness.plugin import RUNS_KEY

        class Run:
            observer = None

            def __init__(self, name, verdict):
                self.name, self.dir = name, Path({str(reports)!r}) / "run-1" / name
                self.dir.mkdir(parents=True, exist_ok=True)
                self.verdict = {{"scenario": name, "verdict": verdict, "reasons": [], "rto_s": {{}},
                                "rpo": {{}}, "history": str(self.dir / "history.jsonl")}}

            def _write_json(self, name, doc):
                (self.dir / name).write_text(json.dumps(doc))

        @pytest.mark.scenario
        def test_raised_before_the_fault():
            raise RuntimeError("unknown target 'etcd'")

        @pytest.mark.scenario
        def test_no_citus():
            pytest.skip("no Citus package")

        @pytest.mark.scenario
        def test_asserts_after_a_pass(request):
            request.node.stash[RUNS_KEY] = [Run("asserts_after_a_pass", "pass")]
            assert 1 == 2, "figure out of range"
    """)
    result = pytester.runpytest_subprocess(*NO_CACHE, "--pgchaos-reports-dir", str(reports))
    result.assert_outcomes(failed=2, skipped=1)
    rows = {r["scenario"]: r for r in json.loads((reports / "run-1" / "summary.json").read_text())}
    assert rows["test_raised_before_the_fault"]["verdict"] == "error"
    assert "unknown target 'etcd'" in rows["test_raised_before_the_fault"]["reason"]
    assert rows["test_no_citus"]["verdict"] == "skipped" and "no Citus package" in rows["test_no_citus"]["reason"]
    assert rows["asserts_after_a_pass"]["verdict"] == "fail"
    assert "figure out of range" in rows["asserts_after_a_pass"]["reason"]
    result.stdout.fnmatch_lines(["*pgchaos: 2 executed, 1 skipped, 1 errored*"])


def test_nothing_executed_fails_below_the_declared_floor(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_skips="""
        import pytest

        @pytest.mark.scenario
        def test_no_citus():
            pytest.skip("no Citus package")
    """)
    reports = str(tmp_path / "reports")
    assert pytester.runpytest_subprocess(*NO_CACHE, "--pgchaos-reports-dir", reports).ret == 0
    result = pytester.runpytest_subprocess(*NO_CACHE, "--pgchaos-reports-dir", reports,
                                           "--pgchaos-min-executed", "1")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*nothing was certified: 0 scenario(s) executed*no Citus package*"])


def test_repeat_runs_each_scenario_n_times(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_samples="""
        import pytest

        @pytest.mark.scenario
        def test_one(pgchaos_sample):
            assert pgchaos_sample in (1, 2, 3)
    """)
    result = pytester.runpytest_subprocess(*NO_CACHE, "--pgchaos-reports-dir", str(tmp_path), "-v",
                                           "--pgchaos-repeat", "3")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*test_one?sample1?*", "*test_one?sample3?*"])


def test_a_stack_that_did_not_return_fails_the_rest_fast(pytester: pytest.Pytester, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    pytester.makepyfile(test_broken=f"""
        import pytest
        from pathlib import Path
        from harness.plugin import RUNS_KEY

        class Run:
            observer = None

            def __init__(self, name):
                self.name, self.dir = name, Path({str(reports)!r}) / "run-1" / name
                self.verdict = {{"scenario": name, "verdict": "fail", "reasons": ["steady state did not return"],
                                "findings": [{{"code": "steady-state", "severity": "fail", "text": "x"}}],
                                "rto_s": {{}}, "rpo": {{}}, "history": str(self.dir / "history.jsonl")}}

        @pytest.mark.scenario
        def test_first(request):
            request.node.stash[RUNS_KEY] = [Run("first")]

        @pytest.mark.scenario
        def test_second(scenario_run):
            raise AssertionError("must not run")
    """)
    result = pytester.runpytest_subprocess(*NO_CACHE, "--pgchaos-reports-dir", str(reports))
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(["*not run: the stack did not return to its steady state after first*"])
    rows = {r["scenario"]: r for r in json.loads((reports / "run-1" / "summary.json").read_text())}
    assert rows["test_second"]["verdict"] == "error"


def test_baseline_option_fails_a_session_that_regressed(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """`--pgchaos-baseline DIR`: the differential gate under pytest, from verdicts on disk."""
    base = tmp_path / "baseline" / "run-0"
    for i, rto in enumerate((3.4, 3.6, 3.9)):
        d = base / f"s[sample{i}]"
        d.mkdir(parents=True)
        (d / "verdict.json").write_text(json.dumps({"scenario": f"s[sample{i}]", "verdict": "pass",
                                                    "rto_s": {"write": rto}, "rpo": {"lost": 0}}))
    reports = tmp_path / "reports"
    for rto, expect in ((9.0, 1), (4.1, 0)):
        pytester.makepyfile(test_cand=f"""
            import pytest
            from pathlib import Path
            from harness.plugin import RUNS_KEY

            class Run:
                observer = None

                def __init__(self, name):
                    self.name, self.dir = name, Path({str(reports)!r}) / "run-1" / name
                    self.verdict = {{"scenario": name, "verdict": "pass", "reasons": [],
                                    "rto_s": {{"write": {rto}}}, "rpo": {{"lost": 0}},
                                    "history": str(self.dir / "history.jsonl")}}

            @pytest.mark.scenario
            def test_s(request):
                request.node.stash[RUNS_KEY] = [Run("s")]
        """)
        result = pytester.runpytest_subprocess(*NO_CACHE, "--pgchaos-reports-dir", str(reports),
                                               "--pgchaos-baseline", str(tmp_path / "baseline"))
        assert result.ret == expect, result.stdout.str()[-2000:]
        assert (reports / "run-1" / "gate.md").exists()


def test_detect_option_tightens_time_to_detect_targets_and_refuses_bad_values(pytester: pytest.Pytester) -> None:
    from harness.scenario import RunOptions

    assert RunOptions(detect_s=15).detect_bound(60) == 15
    assert RunOptions(detect_s=90).detect_bound(60) == 60  # never loosened
    assert RunOptions().detect_bound(60) == 60
    pytester.makepyfile(test_opts="""
        def test_opts(pytestconfig):
            from harness.plugin import run_options
            print("DETECT", run_options(pytestconfig).detect_s)
    """)
    ok = pytester.runpytest_subprocess(*NO_CACHE, "-s", "--pgchaos-detect-s", "15")
    ok.assert_outcomes(passed=1)
    assert "DETECT 15.0" in ok.stdout.str()
    for bad in ("0", "-3", "nan"):
        refused = pytester.runpytest_subprocess(*NO_CACHE, "--pgchaos-detect-s", bad)
        assert refused.ret == pytest.ExitCode.USAGE_ERROR
        assert f"--pgchaos-detect-s: {float(bad)} is not a positive number of seconds" in refused.stderr.str()
