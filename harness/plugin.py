"""pytest plugin: options, markers and fixtures, thin over the harness library.

Loaded through the `pytest11` entry point (or `-p harness.plugin`). Every
fixture is one line over a library call; scenarios share one session stack,
healed and checked for the steady state between them.

Inert in a session that uses none of it: no file is written and allure is not
switched on unless the selected tests include scenarios (marked `scenario`, or
using `scenario_run`). Every option is spelled `--pgchaos-*`; the older short
spellings stay as aliases where no other plugin registered them first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.scenario import RunOptions, ScenarioRun
    from harness.stack import Stack

VERDICTS_KEY = pytest.StashKey[list]()  # config: every verdict of the session
RUNS_KEY = pytest.StashKey[list]()  # item: the ScenarioRuns the test made
TARGET_ERROR_KEY = pytest.StashKey[str]()  # item: its target("row") names no row of the table
SCENARIO_FIXTURES = frozenset({"scenario_run"})
PASSING = ("pass", "waived")
# The operations guide's section for each of its target rows (allure's "feature").
GUIDE_SECTIONS = {
    "coordinator-failure": "Disaster Recovery: Single Coordinator Failure",
    "worker-failure": "Disaster Recovery: Worker Node Failure",
    "complete-cluster-loss": "Disaster Recovery: Complete Cluster Loss",
    "data-corruption": "Disaster Recovery: Data Corruption",
}


# (name, legacy alias or None, addoption keywords); dests are unchanged for library callers
OPTIONS: tuple[tuple[str, str | None, dict[str, Any]], ...] = (
    ("--pgchaos-profile", "--stack-profile", dict(
        dest="pgchaos_profile", default="local", metavar="NAME",
        help="stack profile to provision (local, citus)")),
    ("--pgchaos-engine", "--engine", dict(
        dest="pgchaos_engine", default="compose", choices=("compose", "swarm"),
        help="deployment engine: compose (default) or swarm (docker stack deploy of docker-stack.yml)")),
    ("--pgchaos-variant", "--stack-variant", dict(
        dest="pgchaos_variant", default=None, metavar="NAME",
        help="config variant under compose/variants/ (CI gating of config changes)")),
    ("--pgchaos-compose-dir", "--compose-dir", dict(
        dest="pgchaos_compose_dir", default=None, metavar="DIR",
        help="use another repository's compose folder (same layout as compose/)")),
    ("--pgchaos-manifest", "--manifest", dict(
        dest="pgchaos_manifest", default=None, metavar="FILE",
        help="stack manifest (TOML) of the stack to test (default: the reference)")),
    ("--pgchaos-attach", "--attach", dict(
        dest="pgchaos_attach", nargs="?", const="", default=None, metavar="PROJECT",
        help="test a stack that is already running (compose project; found from the manifest when not "
             "named); nothing of it is removed")),
    ("--pgchaos-keep-stack", "--keep-stack", dict(
        dest="pgchaos_keep", action="store_true",
        help="leave the stack up after the session (pgchaos down removes it)")),
    ("--pgchaos-targets", "--targets", dict(
        dest="pgchaos_targets", default=None, metavar="TOML",
        help="RTO/RPO table (default: the shipped scenarios/targets.toml)")),
    ("--pgchaos-load-users", "--load-users", dict(
        dest="pgchaos_users", type=int, default=3, metavar="N",
        help="locust users during each scenario (0: probe only)")),
    ("--pgchaos-seed", "--seed", dict(
        dest="pgchaos_seed", type=int, default=None, metavar="N", help="seed for randomised schedules")),
    ("--pgchaos-timeout-multiplier", "--timeout-multiplier", dict(
        dest="pgchaos_timeout_mult", type=float, default=1.0, metavar="X",
        help="scale every wait (slow machines)")),
    ("--pgchaos-reports-dir", "--reports-dir", dict(
        dest="pgchaos_reports", default=None, metavar="DIR",
        help="where run reports go (default: ./reports of the working directory); allure results go to "
             "DIR/allure when scenarios run and no --alluredir is given")),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pgchaos", "pgchaos chaos scenarios")
    taken = _option_names(parser)
    for name, alias, kwargs in OPTIONS:
        names = [name] + ([alias] if alias and alias not in taken else [])
        group.addoption(*names, **kwargs)


def _option_names(parser: pytest.Parser) -> set[str]:
    """Option strings other plugins registered before this one (a legacy alias
    that one of them uses is left out rather than clash)."""
    try:
        groups = [*parser._groups, parser._anonymous]  # noqa: SLF001 - pytest has no public listing
        return {n for g in groups for opt in g.options for n in opt.names()}
    except AttributeError:
        return set()


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "scenario: a disaster scenario run against the live stack",
        "target(row): the row of targets.toml the scenario is judged against",
        "requires(*capabilities): what the stack must offer (pooler, toxiproxy, dcs-members>=3, citus, ...); "
        "skipped naming the missing one otherwise",
        "docker: needs a Docker engine and the stack",
        "citus: a scenario of the Citus profile (run them with -m citus --stack-profile citus)",
        "alerts(*names, detect_s=60, resolve_s=120): alerts the scenario's first fault must fire "
        "(and resolve after recovery); judged when the stack has alerting",
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
    _check_target_rows(config, items)
    _skip_unmet_requirements(config, items)


def _check_target_rows(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A target("row") naming no row of the table: the test fails at setup, before
    any fixture (so before a stack is started); other tests run."""
    marked = [(item, mark.args[0]) for item in items
              if (mark := item.get_closest_marker("target")) is not None and mark.args]
    if not marked:
        return
    from harness.errors import PgchaosError

    try:
        rows = set(_targets(config).rows)
    except PgchaosError as exc:
        raise pytest.UsageError(str(exc)) from None
    for item, row in marked:
        if row not in rows:
            item.stash[TARGET_ERROR_KEY] = (f"{item.nodeid}: target({row!r}) is not a row of "
                                            f"{_targets_path(config)}; valid rows: {', '.join(sorted(rows))}")


def _targets_path(config: pytest.Config) -> Path:
    from harness.assets import targets_file

    given = config.getoption("pgchaos_targets")
    return Path(given) if given else targets_file()


def _targets(config: pytest.Config) -> Any:
    from harness.targets import load_targets

    return load_targets(_targets_path(config))


def is_scenario(item: pytest.Item) -> bool:
    """A pgchaos scenario: marked `scenario`, or using the scenario_run fixture."""
    return (item.get_closest_marker("scenario") is not None
            or bool(SCENARIO_FIXTURES & set(getattr(item, "fixturenames", ()))))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Allure results under <reports>/allure, only for a session that runs scenarios."""
    config = session.config
    if config.option.collectonly or not any(is_scenario(item) for item in session.items):
        return
    from harness.report.allure_session import enable_results

    enable_results(config, run_options(config).reports_dir / "allure")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    error = item.stash.get(TARGET_ERROR_KEY, None)
    if error is not None:
        pytest.fail(error, pytrace=False)


def _skip_unmet_requirements(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip, naming the capability, every test that needs what the stack lacks."""
    needing = [(item, [r for m in item.iter_markers("requires") for r in m.args]) for item in items]
    needing = [(item, reqs) for item, reqs in needing if reqs]
    if not needing:
        return
    from harness.errors import PgchaosError
    from harness.stack.manifest import unmet
    from harness.stack.stack import mode_capabilities

    try:
        spec = stack_spec(config)
        caps = mode_capabilities(spec.manifest, spec.attach is not None, spec.engine)
    except PgchaosError as exc:
        raise pytest.UsageError(str(exc)) from None
    no_citus = _citus_unavailable(spec)
    for item, reqs in needing:
        try:
            missing = unmet(reqs, caps)
        except PgchaosError as exc:
            raise pytest.UsageError(f"{item.nodeid}: {exc}") from None
        if missing:
            item.add_marker(pytest.mark.skip(
                reason=f"the stack ({spec.manifest.name}) lacks: {', '.join(missing)}"))
        elif no_citus and "citus" in reqs:
            item.add_marker(pytest.mark.skip(reason=no_citus))


def _citus_unavailable(spec: Any) -> str | None:
    """Why a stack that needs the Citus image cannot be provisioned here (None: it can)."""
    from harness.errors import PgchaosError
    from harness.stack.images import citus_source

    if spec.manifest.images != "citus" or spec.attach is not None:
        return None
    try:
        citus_source()
    except PgchaosError as exc:
        return str(exc)
    return None


def run_options(config: pytest.Config) -> RunOptions:
    from harness.scenario import RunOptions

    opts = RunOptions(load_users=config.getoption("pgchaos_users"),
                      timeout_multiplier=config.getoption("pgchaos_timeout_mult"),
                      seed=config.getoption("pgchaos_seed"))
    if config.getoption("pgchaos_reports"):  # otherwise ./reports of the working directory
        opts.reports_dir = Path(config.getoption("pgchaos_reports")).resolve()
    if config.getoption("pgchaos_targets"):
        opts.targets_path = Path(config.getoption("pgchaos_targets"))
    return opts


def stack_spec(config: pytest.Config) -> Any:
    from harness.stack import StackSpec

    kwargs: dict[str, Any] = {"profile": config.getoption("pgchaos_profile"),
                              "variant": config.getoption("pgchaos_variant"),
                              "attach": config.getoption("pgchaos_attach"),
                              "engine": config.getoption("pgchaos_engine")}
    if config.getoption("pgchaos_compose_dir"):
        kwargs["compose_dir"] = Path(config.getoption("pgchaos_compose_dir")).resolve()
    if config.getoption("pgchaos_manifest"):
        kwargs["manifest_path"] = Path(config.getoption("pgchaos_manifest")).resolve()
    return StackSpec(**kwargs)


@pytest.fixture(scope="session")
def pgchaos_options(pytestconfig: pytest.Config) -> RunOptions:
    return run_options(pytestconfig)


@pytest.fixture(scope="session")
def pgchaos_stack(pytestconfig: pytest.Config) -> Iterator[Stack]:
    from harness.session import session_stack

    yield from session_stack(stack_spec(pytestconfig), keep=pytestconfig.getoption("pgchaos_keep"))


@pytest.fixture
def scenario_run(request: pytest.FixtureRequest, pgchaos_options: RunOptions) -> Callable[..., ScenarioRun]:
    """A factory of ScenarioRun on the session's stack: `with scenario_run() as run: ...`.
    The test fails on a verdict other than pass/waived even without an assert."""
    from harness.scenario import AlertExpectation, ScenarioRun

    mark = request.node.get_closest_marker("target")
    row = mark.args[0] if mark and mark.args else None
    _check_row(request.config, row)  # before the stack is asked for
    alerts = request.node.get_closest_marker("alerts")
    expected = None if alerts is None else AlertExpectation(tuple(alerts.args), **alerts.kwargs)
    stack: Stack = request.getfixturevalue("pgchaos_stack")

    def make(name: str | None = None, target: str | None = row, load: bool = True) -> ScenarioRun:
        from harness.report.allure_report import AllureObserver

        if target != row:
            _check_row(request.config, target)
        observer = AllureObserver()
        observer.labels(feature=GUIDE_SECTIONS.get(target or "", "Troubleshooting"),
                        severity="critical" if target in GUIDE_SECTIONS else "normal",
                        scenario=name or request.node.name)
        run = ScenarioRun(stack, name or request.node.name, target, pgchaos_options, load, observer=observer,
                          alerts=expected)
        request.node.stash.setdefault(RUNS_KEY, []).append(run)
        return run

    return make


def _check_row(config: pytest.Config, row: str | None) -> None:
    if row is None:
        return
    rows = _targets(config).rows
    if row not in rows:
        pytest.fail(f"target({row!r}) is not a row of {_targets_path(config)}; valid rows: "
                    f"{', '.join(sorted(rows))}", pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    runs = [run for run in item.stash.get(RUNS_KEY, []) if run.verdict is not None]
    if call.when != "call" or not runs:
        return
    from harness.scenario import verdict_message

    report = outcome.get_result()
    failing = [run for run in runs if run.verdict.get("verdict") not in PASSING]
    if failing and report.passed and not hasattr(report, "wasxfail"):
        # a scenario is judged by its verdict, assert or not
        report.outcome = "failed"
        report.longrepr = "\n".join(f"pgchaos verdict of {run.name}: {verdict_message(run.verdict)}"
                                    for run in failing)
    for run in runs:
        item.config.stash[VERDICTS_KEY].append(run.verdict)
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
