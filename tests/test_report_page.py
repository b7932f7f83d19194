"""The certification and trend pages: their content from a recorded run, and the page as
headless Chromium shows it (no console error, every image loaded, one row per scenario)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from harness.assets import default_reports_dir
from harness.cli import main
from harness.errors import PgchaosError
from harness.report import allure_site
from harness.report.allure_site import find_allure, generate_site, offline, select_results
from harness.report.browser import Chromium, find_chromium
from harness.report.page import bar, headline, margin_text, overall, render_page, waiver_bound, write_page
from harness.report.trend import config_changes, find_runs, render_trend, series, write_trend

pytest_plugins = ("pytester",)

RECORDED = Path(__file__).parent / "data" / "recorded-run"
SCENARIOS = ("test_coordinator_hard_loss", "test_coordinator_graceful_stop", "test_worker_loss",
             "test_dcs_member_loss")
# where the browser check keeps its pages and screenshots (reports/ of the working directory)
CHECKED = default_reports_dir() / "page-check"


def copy_run(dest: Path, name: str = "20261204-183755") -> Path:
    run = dest / name
    shutil.copytree(RECORDED, run)
    return run


def verdict_rows(page: str) -> list[str]:
    return re.findall(r'<tr class="verdict-row" data-verdict="([a-z]+)">', page)


# -- the certification page ---------------------------------------------------------------

def test_page_has_one_row_per_scenario_worst_first(tmp_path: Path) -> None:
    page = render_page(copy_run(tmp_path))
    assert verdict_rows(page) == ["fail", "waived", "pass", "skipped"]  # failing first, skipped last
    for name in SCENARIOS:
        assert f'id="s-{name}"' in page
    assert "Not certified: 1 of 3 executed scenarios failing. 1 skipped." in page


def test_page_is_self_contained(tmp_path: Path) -> None:
    page = render_page(copy_run(tmp_path))
    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page), "an external asset"
    images = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(images) == 2 and all(src.startswith("data:image/png;base64,") for src in images)
    assert "no timeline picture" in page  # the hard loss has none in the recorded run


def test_page_header_names_stack_machine_and_revision(tmp_path: Path) -> None:
    run = copy_run(tmp_path)
    info = json.loads((run / "run-info.json").read_text())
    page = render_page(run)
    assert "manifest reference · profile local · engine compose · variant reference" in page
    assert f"hash {info['stack']['config_hash']}" in page
    assert f"git {info['stack']['git']['commit']}" in page
    assert f"{info['machine']['cores']} cores" in page
    assert "3 executed, 1 skipped, 0 errored" in page
    assert '<a href="summary.json">summary.json</a> <a href="run-info.json">run-info.json</a>' in page


def test_page_without_run_info_says_so(tmp_path: Path) -> None:
    run = copy_run(tmp_path)
    (run / "run-info.json").unlink()
    assert render_page(run).count("not recorded by this run") == 2


def test_page_details_come_from_the_verdicts(tmp_path: Path) -> None:
    page = render_page(copy_run(tmp_path))
    # the waiver the hard loss was judged against, marked on its bars
    assert "waiver 25.0 s" in page
    # recovery phases of the graceful stop, its alerts, the fault's evidence
    stop = page[page.index('id="s-test_coordinator_graceful_stop"'):page.index('id="s-test_dcs_member_loss"')]
    assert "Recovery phases" in stop and "slowest: <b>dcs</b>" in stop
    assert ">router 2.8</text>" in stop and ">clients 3.6</text>" in stop
    assert "PatroniMemberDown" in stop and "container exited (exit code 0)" in stop
    # the failure's reason, whole in its details
    loss = page[page.index('id="s-test_worker_loss"'):page.index('id="s-test_coordinator_hard_loss"')]
    assert "failed after every fault was healed" in loss


def test_page_links_only_files_that_exist(tmp_path: Path) -> None:
    run = copy_run(tmp_path)
    assert 'href="test_worker_loss/history.jsonl"' not in render_page(run)
    (run / "test_worker_loss" / "history.jsonl").write_text("")
    (run / "test_worker_loss" / "logs").mkdir()
    (run / "test_worker_loss" / "logs" / "worker-1.log").write_text("log line\n")
    page = render_page(run)
    assert 'href="test_worker_loss/history.jsonl"' in page
    assert 'href="test_worker_loss/logs/worker-1.log"' in page


def test_page_without_summary_reads_the_scenario_folders(tmp_path: Path) -> None:
    run = copy_run(tmp_path)
    (run / "summary.json").unlink()
    assert sorted(verdict_rows(render_page(run))) == ["fail", "pass", "waived"]


def test_bar_marks_target_and_waiver() -> None:
    waived = bar(21.1, 10.0, 25.0)
    assert waived.count("<line") == 2 and "waiver 25.0 s" in waived and "#0969da" in waived
    over = bar(28.0, 10.0, 25.0)
    assert "#cf222e" in over  # past the waiver: red
    assert "#1a7f37" in bar(9.9, 300.0, None) and "#b76e00" in bar(9.0, 10.0, None)  # within; marginal
    assert "<line" not in bar(3.0, None, None)
    assert "svg" not in bar(None, 10.0, None)


def test_margin_past_the_target_is_shown() -> None:
    assert margin_text(None, 12.0, 10.0) == "<b>120%</b> of 10 s"
    assert margin_text({"ratio": 0.81, "bound_s": 25.0, "against": "waiver"}, 20.3, 10.0) == "81% of 25 s (waiver)"
    assert margin_text(None, 3.0, None) == "—"


def test_waiver_bound_of_a_passing_run_comes_from_its_faults() -> None:
    stop = json.loads((RECORDED / "test_coordinator_graceful_stop" / "verdict.json").read_text())
    kill = json.loads((RECORDED / "test_coordinator_hard_loss" / "verdict.json").read_text())
    assert waiver_bound(kill) == 25.0
    assert waiver_bound(stop) is None  # a graceful stop is not covered by the hard-kill waiver


def test_overall_and_headline() -> None:
    assert overall([]) == overall(["skipped"]) == "nothing certified"
    assert overall(["pass", "waived", "skipped"]) == "waived"
    assert overall(["pass", "unjudged", "fail"]) == "fail"
    assert headline([{"verdict": "pass"}, {"verdict": "unjudged"}]) == (
        "All 1 judged scenarios met their targets. 1 measured without a target (unjudged).")
    assert headline([{"verdict": "pass"}, {"verdict": "waived"}]) == (
        "Certified: all 2 executed scenarios met their targets.")
    assert headline([]) == "Nothing was certified: no scenario ran."


# -- the trend page -----------------------------------------------------------------------

def trend_folder(tmp_path: Path) -> Path:
    """Three runs of the recorded one: the second slower, the third with another config."""
    reports = tmp_path / "reports"
    for i, (stamp, scale, cfg) in enumerate((("20261201-100000", 1.0, None), ("20261202-100000", 1.5, None),
                                             ("20261203-100000", 1.0, "0123456789ab"))):
        run = copy_run(reports, stamp)
        rows = json.loads((run / "summary.json").read_text())
        for r in rows:
            if r.get("rto_write_s") is not None:
                r["rto_write_s"] *= scale
        (run / "summary.json").write_text(json.dumps(rows))
        if cfg:
            info = json.loads((run / "run-info.json").read_text())
            info["stack"]["config_hash"] = cfg
            (run / "run-info.json").write_text(json.dumps(info))
        assert i == len(find_runs(reports)) - 1
    return reports


def test_trend_orders_runs_and_marks_config_changes(tmp_path: Path) -> None:
    reports = trend_folder(tmp_path)
    runs = find_runs(reports)
    assert [r.path.name for r in runs] == ["20261201-100000", "20261202-100000", "20261203-100000"]
    changes = config_changes(runs)
    assert [i for i, _ in changes] == [2] and "→ 0123456789ab" in changes[0][1]
    s = series(runs)["test_coordinator_hard_loss"]
    assert [round(p[1], 2) for p in s.points] == [21.15, 31.72, 21.15]


def test_trend_page_draws_one_multiple_per_measured_scenario(tmp_path: Path) -> None:
    page = render_trend(trend_folder(tmp_path))
    drawn = re.findall(r'<figure class="multiple" data-scenario="([^"]+)"', page)
    assert drawn == ["test_worker_loss", "test_coordinator_graceful_stop", "test_coordinator_hard_loss"]
    assert "test_dcs_member_loss" in page.split("No RTO measured", 1)[1]  # skipped in every run: listed
    assert page.count('class="failure"') == 3  # the worker loss failed in each of the three runs
    assert page.count('class="config-change"') == 3  # one mark per multiple
    assert "<script" not in page


def test_report_command_writes_pages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports = trend_folder(tmp_path)
    run = reports / "20261203-100000"
    assert main(["report", "--page", str(run), "--trend", str(reports)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].endswith(str(run / "certification.html")) and (run / "certification.html").is_file()
    assert any(line.endswith(str(reports / "trend.html")) for line in out)
    assert main(["report", "--page", str(tmp_path)]) == 2  # not a run folder: one line, exit 2
    assert "not a run folder" in capsys.readouterr().err


# -- at the end of a session ----------------------------------------------------------------

SESSION = """
from pathlib import Path
from harness.plugin import RUNS_KEY

class Run:  # what scenario_run stashes: a ScenarioRun with its verdict
    observer = None

    def __init__(self, name, verdict):
        self.name, self.dir = name, Path({reports!r}) / "run-1" / name
        self.verdict = {{"scenario": name, "verdict": verdict, "reasons": [], "rto_s": {{"write": 3.2}},
                        "rpo": {{"lost": 0}}, "history": str(self.dir / "history.jsonl")}}

def test_passing(request):
    request.node.stash[RUNS_KEY] = [Run("passing", "pass")]
"""


@pytest.mark.parametrize("opt_out", [False, True])
def test_a_session_writes_the_page_last(pytester: pytest.Pytester, tmp_path: Path, opt_out: bool,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1]))  # this checkout's harness, installed or not
    reports = tmp_path / "reports"
    pytester.makepyfile(test_session=SESSION.format(reports=str(reports)))
    extra = ["--pgchaos-no-page"] if opt_out else []
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--pgchaos-reports-dir", str(reports), *extra)
    result.assert_outcomes(passed=1)
    page = reports / "run-1" / "certification.html"
    assert (reports / "run-1" / "run-info.json").is_file()
    if opt_out:
        assert not page.exists() and "certification page" not in result.stdout.str()
        return
    said = [line for line in result.stdout.lines if line.strip()]
    assert said[-1] == f"pgchaos: certification page: {page}"  # after pytest's own summary
    assert verdict_rows(page.read_text()) == ["pass"]


# -- the Allure site ------------------------------------------------------------------------

def allure_results(folder: Path, run_start: float) -> Path:
    """Allure results of two tests, one inside the run's window and one a day before it."""
    folder.mkdir(parents=True)
    for uuid, start in (("in-run", run_start + 30), ("day-before", run_start - 86_400)):
        (folder / f"{uuid}-attachment.txt").write_text(f"evidence of {uuid}\n")
        (folder / f"{uuid}-result.json").write_text(json.dumps({
            "uuid": uuid, "name": f"test_{uuid}", "fullName": f"scenarios.test#{uuid}", "status": "passed",
            "start": int(start * 1000), "stop": int((start + 20) * 1000), "historyId": uuid,
            "steps": [{"name": "inject", "status": "passed", "attachments": [
                {"name": "verdict", "source": f"{uuid}-attachment.txt", "type": "text/plain"}]}]}))
    return folder


def test_allure_results_of_one_run(tmp_path: Path) -> None:
    run = copy_run(tmp_path / "reports")
    start = allure_site.run_window(run)[0] + allure_site.SLACK_S
    results = allure_results(tmp_path / "reports" / "allure", start)
    assert select_results(results, run, tmp_path / "one") == 1
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["in-run-attachment.txt", "in-run-result.json"]
    assert select_results(results, None, tmp_path / "all") == 2


def test_allure_page_asks_nothing_of_the_network() -> None:
    page = ('<body><div id="app"></div>\n    <script async src="https://www.googletagmanager.com/gtag/js?id=G-X">'
            "</script>\n    <script>\n        window.dataLayer = window.dataLayer || [];\n"
            "        gtag('config', 'G-X');\n    </script>\n    <script>window.data = 1</script></body>")
    assert offline(page) == '<body><div id="app"></div>\n    <script>window.data = 1</script></body>'


def test_allure_missing_is_one_line_naming_the_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGCHAOS_ALLURE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))  # neither allure nor npm
    with pytest.raises(PgchaosError) as err:
        generate_site(tmp_path / "allure", tmp_path / "site")
    text = str(err.value)
    assert "\n" not in text and "apt-get install -y nodejs npm" in text
    assert f"npm install --prefix {tmp_path / 'cache'} allure@3" in text
    with pytest.raises(PgchaosError, match="Node.js and npm"):
        generate_site(tmp_path / "allure", tmp_path / "site", install=True)


def test_allure_site_of_a_run(tmp_path: Path) -> None:
    if find_allure() is None:
        pytest.skip("Allure 3 is not installed (pgchaos report --html --install-allure)")
    run = copy_run(tmp_path / "reports")
    allure_results(tmp_path / "reports" / "allure", allure_site.run_window(run)[0] + allure_site.SLACK_S)
    index = generate_site(tmp_path / "reports" / "allure", run / "allure-report", run, name="pgchaos run x")
    assert "googletagmanager" not in index.read_text()
    tests = json.loads((index.parent / "test-results.json").read_text())["byId"].values()
    assert [t["name"] for t in tests] == ["test_in-run"]  # the day before is another run's
    assert json.loads((index.parent / "summary.json").read_text())["meta"]["singleFile"] is True


# -- in a browser -------------------------------------------------------------------------

IMAGES = "[...document.images].map(i => i.complete && i.naturalWidth)"
ROWS = "document.querySelectorAll('#verdicts tbody tr').length"


@pytest.fixture(scope="module")
def chromium() -> Chromium:
    if find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium; bootstrap.sh installs it)")
    with Chromium() as browser:
        yield browser


def test_certification_page_in_chromium(chromium: Chromium) -> None:
    shutil.rmtree(CHECKED, ignore_errors=True)
    run = copy_run(CHECKED)
    page = write_page(run)
    seen = chromium.check(page, {"images": IMAGES, "rows": ROWS, "title": "document.title"},
                          screenshot=run / "certification.png")
    assert seen.errors == []
    assert seen.values["images"] == [520, 520]
    assert seen.values["rows"] == len(SCENARIOS)
    assert seen.values["title"].startswith("pgchaos fail")
    assert seen.screenshot is not None and seen.screenshot.stat().st_size > 10_000
    full = chromium.check(page, screenshot=run / "certification-full.png", full_page=True)
    assert full.errors == []


def test_trend_page_in_chromium(chromium: Chromium, tmp_path: Path) -> None:
    reports = trend_folder(tmp_path)
    page = write_trend(reports)
    seen = chromium.check(page, {"charts": "document.querySelectorAll('svg.trend').length"},
                          screenshot=CHECKED / "trend.png")
    assert seen.errors == [] and seen.values["charts"] == 3


def test_the_browser_check_sees_what_breaks(chromium: Chromium, tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><html><body><img src="missing.png">'
                      "<script>console.error('boom')</script></body></html>")
    seen = chromium.check(broken, {"images": IMAGES})
    assert seen.values["images"] == [0]
    assert any("boom" in e for e in seen.errors)
    assert any("missing.png" in e or "ERR_FILE_NOT_FOUND" in e for e in seen.errors)
