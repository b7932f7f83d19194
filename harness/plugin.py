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

from harness import engines

if TYPE_CHECKING:
    from harness.scenario import RunOptions, ScenarioRun
    from harness.stack import Stack

VERDICTS_KEY = pytest.StashKey[list]()  # config: every verdict of the session (and error/skip rows)
RUN_ID_KEY = pytest.StashKey[str]()  # config: the session's run id, once scenarios run
BROKEN_KEY = pytest.StashKey[str]()  # config: why the session's stack is no longer usable
PAGE_KEY = pytest.StashKey[str]()  # config: the certification page the session wrote
ROWED_KEY = pytest.StashKey[bool]()  # item: its error or skip row is recorded
SAMPLE_FIXTURE = "pgchaos_sample"  # the parameter --pgchaos-repeat adds to each scenario
RUNS_KEY = pytest.StashKey[list]()  # item: the ScenarioRuns the test made
TARGET_ERROR_KEY = pytest.StashKey[str]()  # item: its target("row") names no row of the table
SCENARIO_FIXTURES = frozenset({"scenario_run"})
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
        dest="pgchaos_engine", default=engines.DEFAULT_ENGINE, choices=engines.names(),
        help=f"deployment engine: {', '.join(engines.names())} (default {engines.DEFAULT_ENGINE})")),
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
    ("--pgchaos-load-workers", "--load-workers", dict(
        dest="pgchaos_load_workers", type=int, default=0, metavar="N",
        help="run the locust users distributed over N local worker processes (locust's "
             "master/worker mode; 0: one process)")),
    ("--pgchaos-seed", "--seed", dict(
        dest="pgchaos_seed", type=int, default=None, metavar="N", help="seed for randomised schedules")),
    ("--pgchaos-timeout-multiplier", "--timeout-multiplier", dict(
        dest="pgchaos_timeout_mult", type=float, default=1.0, metavar="X",
        help="scale every wait (slow machines)")),
    ("--pgchaos-detect-s", None, dict(
        dest="pgchaos_detect_s", type=float, default=None, metavar="SECONDS",
        help="tighten every time-to-detect target to at most SECONDS (a fault held until paged is "
             "held no longer than that); never loosens a scenario's own")),
    ("--pgchaos-margin", None, dict(
        dest="pgchaos_margin", type=float, default=0.15, metavar="FRACTION",
        help="an RTO within this fraction of its bound is 'marginal' (default 0.15)")),
    ("--pgchaos-marginal-fails", None, dict(
        dest="pgchaos_marginal_fails", action="store_true",
        help="a gate run: a 'marginal' verdict fails its test")),
    ("--pgchaos-repeat", None, dict(
        dest="pgchaos_repeat", type=int, default=1, metavar="N",
        help="run every scenario N times; the summary judges the worst sample and shows "
             "min/median/max and flaky verdicts")),
    ("--pgchaos-min-executed", None, dict(
        dest="pgchaos_min_executed", type=int, default=0, metavar="N",
        help="fail the session when fewer than N selected scenarios ran (skips named in the summary)")),
    ("--pgchaos-baseline", None, dict(
        dest="pgchaos_baseline", default=None, metavar="DIR",
        help="the differential gate under pytest: compare this session's verdicts with a baseline run's "
             "reports folder (reports/<run-id>, or a folder of runs); a regression beyond the baseline's "
             "noise fails the session (gate.md beside the summary)")),
    ("--pgchaos-run-all", None, dict(
        dest="pgchaos_run_all", action="store_true",
        help="keep running scenarios after the stack failed to return to its steady state (by default "
             "the rest of the session's scenarios are errors at once, naming the first failure)")),
    ("--pgchaos-split", None, dict(
        dest="pgchaos_split", default=None, metavar="K/N",
        help="run only part K of N of the selected tests (split by expected wall time; every session "
             "with the same selection computes the same split): pgchaos certify --stacks N runs the parts"
             " at once, each on a stack of its own")),
    ("--pgchaos-split-lock", None, dict(
        dest="pgchaos_split_lock", default=None, metavar="FILE",
        help="the lock the parts of a split share: a scenario marked exclusive runs while no other "
             "part runs one (pgchaos certify --stacks N sets it)")),
    ("--pgchaos-split-weights", None, dict(
        dest="pgchaos_split_weights", default=None, metavar="FILE",
        help="JSON of scenario name -> expected seconds for --pgchaos-split (default: 20 s each)")),
    ("--pgchaos-reports-dir", "--reports-dir", dict(
        dest="pgchaos_reports", default=None, metavar="DIR",
        help="where run reports go (default: ./reports of the working directory); allure results go to "
             "DIR/allure when scenarios run and no --alluredir is given")),
    ("--pgchaos-no-page", None, dict(
        dest="pgchaos_no_page", action="store_true",
        help="do not write the certification page (reports/<run-id>/certification.html) at the end")),
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
        "own_stack: builds stacks of its own on other ports (CI runs these beside the session's stack)",
        "exclusive: disturbs the machine (a restore, a flood of clients): when the catalogue is split over "
        "stacks (certify --stacks), it runs while no other stack runs a scenario",
    ):
        config.addinivalue_line("markers", line)
    from harness.load.locust_runner import MAX_WORKERS

    if not 0 <= config.getoption("pgchaos_load_workers") <= MAX_WORKERS:
        raise pytest.UsageError(f"--pgchaos-load-workers: {config.getoption('pgchaos_load_workers')} "
                                f"not in 0..{MAX_WORKERS}")
    detect = config.getoption("pgchaos_detect_s")
    if detect is not None and not (0 < detect < float("inf")):
        raise pytest.UsageError(f"--pgchaos-detect-s: {detect} is not a positive number of seconds")
    config.stash[VERDICTS_KEY] = []
    if config.getoption("pgchaos_split"):
        config.pluginmanager.register(SplitPart(), "pgchaos-split")
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
    _check_stack_spec(config, items)


class SplitPart:
    """--pgchaos-split K/N: after every other selection (-k, -m: trylast), the tests of part K
    kept and the others deselected (harness.split.plan; a test skipped at collection weighs
    nothing). With --pgchaos-split-lock, each scenario's body (its load, faults and
    measurements; not the session stack's bring-up in its setup) holds the parts' lock:
    alone when marked ``exclusive``."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        _keep_split_part(config, items)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        path = item.config.getoption("pgchaos_split_lock")
        if not path or not is_scenario(item):
            return (yield)
        from harness.split import PartsLock

        with PartsLock(Path(path)).hold(exclusive=item.get_closest_marker("exclusive") is not None):
            return (yield)


def _keep_split_part(config: pytest.Config, items: list[pytest.Item]) -> None:
    part = config.getoption("pgchaos_split")
    from harness.errors import PgchaosError
    from harness.split import DEFAULT_WALL_S, load_walls, parse_part, plan, scenario_key

    try:
        k, n = parse_part(part)
        walls = load_walls(config.getoption("pgchaos_split_weights"))
    except PgchaosError as exc:
        raise pytest.UsageError(str(exc)) from None
    weights = [0.0 if item.get_closest_marker("skip") else walls.get(scenario_key(item.name), DEFAULT_WALL_S)
               for item in items]
    parts = plan(weights, n)
    dropped = [item for item, p in zip(items, parts, strict=True) if p != k]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item, p in zip(items, parts, strict=True) if p == k]


def _check_stack_spec(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A session that will ask for the stack checks its spec first (manifest, engine,
    variant, credentials set): bad input is one line, before anything starts."""
    if not any("pgchaos_stack" in getattr(item, "fixturenames", ()) or is_scenario(item) for item in items):
        return
    from harness.errors import PgchaosError

    try:
        stack_spec(config).validate()
    except PgchaosError as exc:
        raise pytest.UsageError(str(exc)) from None


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
                      load_workers=config.getoption("pgchaos_load_workers"),
                      timeout_multiplier=config.getoption("pgchaos_timeout_mult"),
                      seed=config.getoption("pgchaos_seed"),
                      margin=config.getoption("pgchaos_margin"),
                      detect_s=config.getoption("pgchaos_detect_s"),
                      marginal_fails=config.getoption("pgchaos_marginal_fails"))
    if RUN_ID_KEY in config.stash:
        opts.run_id = config.stash[RUN_ID_KEY]
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
    opts = run_options(pytestconfig)
    pytestconfig.stash[RUN_ID_KEY] = opts.run_id
    return opts


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """--pgchaos-repeat N: each scenario N times, as samples sample1..N of one scenario."""
    n = metafunc.config.getoption("pgchaos_repeat", 1) or 1
    if n > 1 and metafunc.definition.get_closest_marker("scenario") is not None:
        metafunc.fixturenames.append(SAMPLE_FIXTURE)
        metafunc.parametrize(SAMPLE_FIXTURE, range(1, n + 1), ids=[f"sample{i}" for i in range(1, n + 1)])


@pytest.fixture(scope="session")
def pgchaos_stack(pytestconfig: pytest.Config) -> Iterator[Stack]:
    from harness.session import session_stack

    yield from session_stack(stack_spec(pytestconfig), keep=pytestconfig.getoption("pgchaos_keep"))


@pytest.fixture
def scenario_run(request: pytest.FixtureRequest, pgchaos_options: RunOptions) -> Callable[..., ScenarioRun]:
    """A factory of ScenarioRun on the session's stack: `with scenario_run() as run: ...`.
    The test fails on a verdict other than pass/waived even without an assert."""
    from harness.scenario import AlertExpectation, ScenarioRun

    broken = request.config.stash.get(BROKEN_KEY, None)
    if broken is not None and not request.config.getoption("pgchaos_run_all"):
        pytest.fail(f"not run: {broken} (fail fast; --pgchaos-run-all runs every scenario anyway)",
                    pytrace=False)
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
    report = outcome.get_result()
    runs = [run for run in item.stash.get(RUNS_KEY, []) if run.verdict is not None]
    if not runs and not is_scenario(item):
        return
    if report.skipped and not hasattr(report, "wasxfail"):
        _row_once(item, "skipped", "skipped", _skip_reason(report))
        return
    if call.when == "call" and runs:
        _judge_item(item, call, report, runs)
    elif report.failed and not runs:  # failed set-up, or raised before any verdict
        what = "set-up failed" if call.when == "setup" else f"{call.when} failed"
        from harness.scenario import SteadyStateError

        if call.excinfo is not None and call.excinfo.errisinstance(SteadyStateError):
            item.config.stash.setdefault(BROKEN_KEY, f"the steady state did not hold before {item.name}")
        _row_once(item, "error", "error", f"error: {what} before a verdict: {_failure_text(call, report)}")


def _judge_item(item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport,
                runs: list[ScenarioRun]) -> None:
    """The test's outcome follows its verdicts, and the verdicts the test's outcome: a test
    that failed after a passing verdict (an assertion, an exception) is not a pass anywhere."""
    from harness.scenario import verdict_message
    from harness.verdict import Finding, force_verdict, is_passing

    strict = item.config.getoption("pgchaos_marginal_fails")
    # "unjudged" (no target row) fails nothing by itself: the test's own asserts decide, and
    # pgchaos's summary and JUnit say "unjudged", never "pass"
    failing = [run for run in runs if run.verdict.get("verdict") != "unjudged"
               and not is_passing(run.verdict.get("verdict"), marginal_fails=strict)]
    if failing and report.passed and not hasattr(report, "wasxfail"):
        # a scenario is judged by its verdict, assert or not
        report.outcome = "failed"
        report.longrepr = "\n".join(f"pgchaos verdict of {run.name}: {verdict_message(run.verdict)}"
                                    for run in failing)
    elif report.failed and call.excinfo is not None:
        text = _failure_text(call, report)
        asserted = call.excinfo.errisinstance(AssertionError)
        for run in runs:
            if is_passing(run.verdict.get("verdict")):
                severity = "fail" if asserted else "error"
                force_verdict(run.verdict, severity, [Finding(
                    "test-assertion" if asserted else "error", severity,
                    f"{'the test asserted' if asserted else 'error: the test raised'}: {text}")])
                run._write_json("verdict.json", run.verdict)  # noqa: SLF001 - the run's own evidence
    for run in runs:
        item.config.stash[VERDICTS_KEY].append(run.verdict)
        if any(f.get("code") == "steady-state" for f in run.verdict.get("findings") or []):
            item.config.stash.setdefault(BROKEN_KEY, f"the stack did not return to its steady state after "
                                                     f"{run.name}")
        report.sections.append(("pgchaos verdict", verdict_message(run.verdict)))
        if run.observer is not None:
            run.observer.attach_scenario(run.dir, run.verdict, failed=report.failed)


def _failure_text(call: pytest.CallInfo[None], report: pytest.TestReport) -> str:
    if call.excinfo is not None:
        return call.excinfo.exconly().strip().splitlines()[0][:500]
    return str(report.longreprtext).strip().splitlines()[-1][:500] if report.longreprtext else "?"


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr or "skipped")


def _row_once(item: pytest.Item, verdict: str, code: str, reason: str) -> None:
    """A summary row for a scenario that produced no verdict (skipped, or an error)."""
    if item.stash.get(ROWED_KEY, False):
        return
    item.stash[ROWED_KEY] = True
    item.config.stash[VERDICTS_KEY].append({
        "scenario": item.name, "verdict": verdict, "valid": False, "reasons": [reason],
        "findings": [{"code": code, "severity": verdict, "text": reason}], "nodeid": item.nodeid})


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    verdicts = config.stash.get(VERDICTS_KEY, [])
    if not verdicts:
        return
    from harness.report.junit import write_junit
    from harness.report.summary import counts, write_summary

    opts = run_options(config)
    run_dir = opts.reports_dir / _run_id_of(verdicts, opts.run_id)
    strict = config.getoption("pgchaos_marginal_fails")
    rows = write_summary(verdicts, run_dir, margin_fails=strict)
    write_junit(rows, run_dir / "junit.xml", run_id=run_dir.name, marginal_fails=strict)
    tally = counts(rows)
    if config.getoption("pgchaos_baseline"):
        _compare_with_baseline(session, verdicts, run_dir)
    floor = config.getoption("pgchaos_min_executed")
    if tally["executed"] < floor:
        skips = "; ".join(f"{r['scenario']}: {r['reason']}" for r in rows if r["verdict"] == "skipped")
        _say(config, f"pgchaos: nothing was certified: {tally['executed']} scenario(s) executed, fewer "
                     f"than {floor} (skipped: {skips or 'none'})")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    _say(config, f"pgchaos: {tally['executed']} executed, {tally['skipped']} skipped, "
                 f"{tally['errored']} errored; summary: {run_dir / 'summary.md'}")
    _write_page(config, run_dir)


def _write_page(config: pytest.Config, run_dir: Path) -> None:
    """run-info.json, and the certification page unless --pgchaos-no-page; its path is said last."""
    from harness.report.page import write_page
    from harness.report.run_info import write_run_info

    try:
        write_run_info(run_dir, stack_spec(config))
        if not config.getoption("pgchaos_no_page"):
            config.stash[PAGE_KEY] = str(write_page(run_dir))
    except Exception as exc:  # a report never fails the session
        _say(config, f"pgchaos: certification page not written: {type(exc).__name__}: {exc}")


def pytest_unconfigure(config: pytest.Config) -> None:
    """The certification page's path, after pytest's own summary: the last line of the session."""
    page = config.stash.get(PAGE_KEY, None)
    if page is not None:
        print(f"pgchaos: certification page: {page}", flush=True)


def _compare_with_baseline(session: pytest.Session, verdicts: list[dict[str, Any]], run_dir: Path) -> None:
    """`--pgchaos-baseline DIR`: the gate's comparison (harness.gate) of this session against DIR."""
    from harness.gate import Samples, collect, compare, write_report

    config = session.config
    base_dir = Path(config.getoption("pgchaos_baseline"))
    baseline = collect([base_dir, *[d for d in base_dir.iterdir() if d.is_dir()]]) if base_dir.is_dir() else {}
    if not baseline:
        _say(config, f"pgchaos: --pgchaos-baseline {base_dir}: no verdict.json under it; nothing to compare")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    candidate: dict[str, Samples] = {}
    for v in verdicts:
        if v.get("verdict") != "skipped" and "rto_s" in v:
            from harness.report.summary import SAMPLE

            candidate.setdefault(SAMPLE.sub("", str(v.get("scenario"))), Samples()).add(v)
    result = compare({k: v for k, v in baseline.items() if k in candidate}, candidate)
    result.update(baseline=str(base_dir), candidate=str(run_dir), samples="as run")
    path = write_report(result, run_dir)
    found = "REGRESSION in " + ", ".join(result["regressions"]) if result["regressions"] else "no regression"
    _say(config, f"pgchaos: {found} against {base_dir} ({path})")
    if result["regressions"]:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _say(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    else:
        print(line)


def _run_id_of(verdicts: list[dict[str, Any]], fallback: str) -> str:
    """The run id the scenarios wrote under (their history's grandparent folder)."""
    for v in verdicts:
        if v.get("history"):
            return Path(v["history"]).parent.parent.name
    return fallback
