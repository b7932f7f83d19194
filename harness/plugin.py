"""pytest plugin: options, markers and fixtures, thin over the harness library.

Loaded through the `pytest11` entry point (or `-p harness.plugin`). Every
fixture is one line over a library call; scenarios share one session stack,
healed and checked for the steady state between them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.scenario import RunOptions, ScenarioRun
    from harness.stack import Stack

VERDICTS_KEY = pytest.StashKey[list]()
# The operations guide's section for each of its target rows (allure's "feature").
GUIDE_SECTIONS = {
    "coordinator-failure": "Disaster Recovery: Single Coordinator Failure",
    "worker-failure": "Disaster Recovery: Worker Node Failure",
    "complete-cluster-loss": "Disaster Recovery: Complete Cluster Loss",
    "data-corruption": "Disaster Recovery: Data Corruption",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pgchaos", "pgchaos chaos scenarios")
    group.addoption("--stack-profile", dest="pgchaos_profile", default="local", metavar="NAME",
                    help="stack profile to provision (local, citus)")
    group.addoption("--stack-variant", dest="pgchaos_variant", default=None, metavar="NAME",
                    help="config variant under compose/variants/ (CI gating of config changes)")
    group.addoption("--compose-dir", dest="pgchaos_compose_dir", default=None, metavar="DIR",
                    help="use another repository's compose folder (same layout as compose/)")
    group.addoption("--keep-stack", dest="pgchaos_keep", action="store_true",
                    help="leave the stack up after the session (pgchaos down removes it)")
    group.addoption("--targets", dest="pgchaos_targets", default=None, metavar="TOML",
                    help="RTO/RPO table (default scenarios/targets.toml)")
    group.addoption("--load-users", dest="pgchaos_users", type=int, default=3, metavar="N",
                    help="locust users during each scenario (0: probe only)")
    group.addoption("--seed", dest="pgchaos_seed", type=int, default=None, metavar="N",
                    help="seed for randomised schedules")
    group.addoption("--timeout-multiplier", dest="pgchaos_timeout_mult", type=float, default=1.0,
                    metavar="X", help="scale every wait (slow machines)")
    group.addoption("--reports-dir", dest="pgchaos_reports", default=None, metavar="DIR",
                    help="where run reports go (default reports/)")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # allure results go to reports/allure unless --alluredir says otherwise
    if hasattr(config.option, "allure_report_dir") and not config.option.allure_report_dir:
        reports = config.getoption("pgchaos_reports") or str(Path(config.rootpath) / "reports")
        config.option.allure_report_dir = str(Path(reports) / "allure")
    for line in (
        "scenario: a disaster scenario run against the live stack",
        "target(row): the row of targets.toml the scenario is judged against",
        "requires(feature): needs a stack feature (e.g. citus); skipped with the reason otherwise",
        "docker: needs a Docker engine and the stack",
    ):
        config.addinivalue_line("markers", line)
    config.stash[VERDICTS_KEY] = []
    if config.getoption("pgchaos_targets", None):
        from harness.errors import PgchaosError
        from harness.targets import load_targets

        try:  # a malformed table is reported before any scenario runs
            load_targets(config.getoption("pgchaos_targets"))
        except PgchaosError as exc:
            raise pytest.UsageError(str(exc)) from None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    profile = config.getoption("pgchaos_profile")
    for item in items:
        for mark in item.iter_markers("requires"):
            feature = mark.args[0] if mark.args else ""
            if feature == "citus" and profile != "citus":
                item.add_marker(pytest.mark.skip(
                    reason="needs the citus profile (Citus is not packaged in any registry reachable here)"))


def run_options(config: pytest.Config) -> RunOptions:
    from harness.scenario import RunOptions

    opts = RunOptions(load_users=config.getoption("pgchaos_users"),
                      timeout_multiplier=config.getoption("pgchaos_timeout_mult"),
                      seed=config.getoption("pgchaos_seed"))
    if config.getoption("pgchaos_reports"):
        opts.reports_dir = Path(config.getoption("pgchaos_reports"))
    if config.getoption("pgchaos_targets"):
        opts.targets_path = Path(config.getoption("pgchaos_targets"))
    return opts


def stack_spec(config: pytest.Config) -> Any:
    from harness.stack import StackSpec

    kwargs: dict[str, Any] = {"profile": config.getoption("pgchaos_profile"),
                              "variant": config.getoption("pgchaos_variant")}
    if config.getoption("pgchaos_compose_dir"):
        kwargs["compose_dir"] = Path(config.getoption("pgchaos_compose_dir")).resolve()
    return StackSpec(**kwargs)


@pytest.fixture(scope="session")
def pgchaos_options(pytestconfig: pytest.Config) -> RunOptions:
    return run_options(pytestconfig)


@pytest.fixture(scope="session")
def pgchaos_stack(pytestconfig: pytest.Config) -> Iterator[Stack]:
    from harness.session import session_stack

    yield from session_stack(stack_spec(pytestconfig), keep=pytestconfig.getoption("pgchaos_keep"))


@pytest.fixture
def scenario_run(request: pytest.FixtureRequest, pgchaos_stack: Stack,
                 pgchaos_options: RunOptions) -> Callable[..., ScenarioRun]:
    from harness.scenario import ScenarioRun

    mark = request.node.get_closest_marker("target")
    row = mark.args[0] if mark and mark.args else None

    def make(name: str | None = None, target: str | None = row, load: bool = True) -> ScenarioRun:
        from harness.report.allure_report import AllureObserver

        observer = AllureObserver()
        observer.labels(feature=GUIDE_SECTIONS.get(target or "", "Troubleshooting"),
                        severity="critical" if target in GUIDE_SECTIONS else "normal",
                        scenario=name or request.node.name)
        run = ScenarioRun(pgchaos_stack, name or request.node.name, target, pgchaos_options, load,
                          observer=observer)
        request.node.stash[VERDICTS_KEY] = run
        return run

    return make


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    run = item.stash.get(VERDICTS_KEY, None)
    if call.when == "call" and run is not None and run.verdict is not None:
        item.config.stash[VERDICTS_KEY].append(run.verdict)
        report = outcome.get_result()
        from harness.scenario import verdict_message

        report.sections.append(("pgchaos verdict", verdict_message(run.verdict)))
        if run.observer is not None:
            run.observer.attach_scenario(run.dir, run.verdict, failed=report.failed)


def pytest_sessionfinish(session: pytest.Session) -> None:
    verdicts = session.config.stash.get(VERDICTS_KEY, [])
    if verdicts:
        from harness.report.junit import write_junit
        from harness.report.summary import write_summary

        opts = run_options(session.config)
        run_dir = opts.reports_dir / _run_id_of(verdicts)
        rows = write_summary(verdicts, run_dir)
        write_junit(rows, run_dir / "junit.xml", run_id=run_dir.name)


def _run_id_of(verdicts: list[dict[str, Any]]) -> str:
    return Path(verdicts[0]["history"]).parent.parent.name
