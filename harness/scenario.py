"""One scenario on a live stack, in Jepsen's order: steady state before ->
load (probe + locust) -> faults -> heal-all -> steady state after -> final
read -> checkers against the target row -> verdict with figures.

Everything lands in reports/<run-id>/<scenario>/: the merged history,
verdict.json, the steady states, `patronictl list` before and after, the
phase timeline, locust's CSV/HTML and, on failure, container logs.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from harness.alerts.pipeline import on_their_way, settled_since
from harness.assets import default_reports_dir
from harness.errors import PgchaosError
from harness.history import LOAD_STOP, MONITOR, OBSERVER, HistoryWriter, Op, merge_histories, write_history
from harness.load.client import Client, key_base
from harness.load.locust_runner import LocustLoad, user_classes_for
from harness.load.phase_recorder import PhaseRecorder
from harness.load.probe import Probe
from harness.nemesis import Nemesis
from harness.stack.steady_state import (
    MisrouteWatch,
    SteadyState,
    router_follow,
    router_observation,
    wait_for_steady_state,
)
from harness.stack.topology import discover
from harness.targets import load_targets
from harness.verdict import DEFAULT_MARGIN, Finding, check_history, force_verdict, is_passing

if TYPE_CHECKING:
    from harness.alerts import AlertWatcher
    from harness.stack.stack import Stack

FINAL_READER = 0
W = TypeVar("W", bound="Workload")
# traffic kept running at least this long after the last fault or heal, so that a recovery
# is confirmed by a stable stretch (checkers.rto's stable window is 1 s)
TAIL_S = 2.0
# successful traffic before the first fault (the probes: ~25 writes and reads at 0.04 s)
BASELINE_S = 1.0
ROUTER_LOOK_S = 2.0  # while waiting for recovery: how often to look where the router sends writes
NOT_RECOVERING = "writes and reads will not recover"  # a recovery wait stopped for a named reason
# scrape (2 s) + rule evaluation (2 s) + notification: how long after a heal its pages can arrive
ALERT_PIPELINE_S = 8.0
# Log lines that fail a run whatever the figures (Patroni's own log gate).
LOG_GATE = re.compile(r"please report it as a BUG|split.brain|more than one leader", re.I)
LOG_WATCH = re.compile(r"PANIC|could not write|No space left on device|data corrupted|invalid page", re.I)


@dataclass
class RunOptions:
    """Knobs shared by every scenario of a session."""

    reports_dir: Path = field(default_factory=default_reports_dir)  # ./reports of the caller, at run time
    run_id: str = field(default_factory=lambda: time.strftime("%Y%m%d-%H%M%S"))
    load_users: int = 3
    load_workers: int = 0  # > 0: locust's master/worker mode over this many local processes
    probe_period_s: float = 0.04
    timeout_multiplier: float = 1.0
    targets_path: Path | None = None
    seed: int | None = None
    settle_timeout_s: float = 180.0  # how long the steady state may take to return after heal-all
    margin: float = DEFAULT_MARGIN  # an RTO within this fraction of its target is "marginal"
    marginal_fails: bool = False  # a gate run: treat "marginal" as a failure
    detect_s: float | None = None  # tightens every time-to-detect target to at most this

    def detect_bound(self, seconds: float) -> float:
        """A time-to-detect target, tightened by ``detect_s`` (never loosened)."""
        return seconds if self.detect_s is None else min(seconds, self.detect_s)

    def scaled(self, seconds: float) -> float:
        return seconds * self.timeout_multiplier


@dataclass(frozen=True)
class AlertExpectation:
    """Alerts a fault must fire within ``detect_s`` and that must resolve within
    ``resolve_s`` of its heal (the detection checker judges them)."""

    alerts: tuple[str, ...]
    detect_s: float = 60.0
    resolve_s: float = 120.0

    def __post_init__(self) -> None:
        if not self.alerts or not all(isinstance(a, str) and a for a in self.alerts):
            raise PgchaosError(f"alerts(...) needs alert names, got {self.alerts!r}")


class PhaseObserver(Protocol):
    """Told of each phase as it starts (e.g. the allure report's steps)."""

    def phase(self, name: str, **detail: Any) -> None: ...


class Workload(Protocol):
    """Traffic beside the load (e.g. harness.load.bank): started by ``run.add_workload``,
    stopped with the load, and asked for its final read after the steady state returns."""

    def start(self) -> Any: ...

    def stop(self) -> None: ...

    def final_read(self) -> Any: ...


class ScenarioError(PgchaosError):
    """The scenario could not be run as written (not a verdict)."""


class StopWaiting(ScenarioError):
    """A wait that cannot end by itself, for a named reason (e.g. a router that does not
    follow the leader): the scenario stops at once instead of at its timeout."""


class SteadyStateError(ScenarioError):
    """The steady state does not hold before a scenario: the stack is not usable."""


class ScenarioRun:
    """Context manager for one scenario; `verdict` is set on exit."""

    def __init__(self, stack: Stack, name: str, target_row: str | None,
                 options: RunOptions | None = None, load: bool = True,
                 observer: PhaseObserver | None = None, alerts: AlertExpectation | None = None) -> None:
        self.stack = stack
        self.name = name
        self.target_row = target_row
        self.options = options or RunOptions()
        self.with_load = load and self.options.load_users > 0
        self.dir = self.options.reports_dir / self.options.run_id / name
        self.run_start = 0.0
        self.key_base = 0
        self.history: HistoryWriter | None = None
        self.nemesis: Nemesis | None = None
        self.probe: Probe | None = None
        self.locust: LocustLoad | None = None
        self.recorder: PhaseRecorder | None = None  # the recovery timeline (checkers.phases)
        self.phases: list[dict[str, Any]] = []
        self.figures: dict[str, Any] = {}
        self.extra_reasons: list[str] = []
        self.post_checks: list[tuple[str, Callable[[list[Op]], dict[str, Any]]]] = []
        self.workloads: list[Workload] = []
        self.error: str | None = None  # the exception that ended the scenario early
        self.before: SteadyState | None = None
        self.after: SteadyState | None = None
        self.verdict: dict[str, Any] | None = None
        self.observer = observer
        self.expected_alerts = alerts
        self.alerts: AlertWatcher | None = None
        self._alert_history: HistoryWriter | None = None
        self._t0_wall = 0.0

    # -- timeline ------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self.run_start

    @property
    def wall_zero(self) -> float:
        """The epoch time of the run's t=0 (to place wall-clock events on its timeline)."""
        return self._t0_wall

    def phase(self, name: str, at: float | None = None, **detail: Any) -> None:
        """Record a phase of the run, now or ``at`` (a time on the run's timeline)."""
        self.phases.append({"phase": name, "time": round(self.now() if at is None else at, 3), **detail})
        if self.observer is not None:
            with contextlib.suppress(Exception):
                self.observer.phase(name, **detail)

    def sleep(self, seconds: float) -> None:
        self.phase("wait", seconds=seconds)
        time.sleep(seconds)

    def wait_until(self, what: str, predicate: Callable[[], bool], timeout_s: float,
                   interval_s: float = 0.5) -> float:
        """Poll until predicate holds; returns the seconds it took (scaled timeout)."""
        start = time.monotonic()
        deadline = start + self.options.scaled(timeout_s)
        while time.monotonic() < deadline:
            try:
                if predicate():
                    took = time.monotonic() - start
                    self.phase("observed", what=what, after_s=round(took, 3))
                    return took
            except StopWaiting:
                raise
            except Exception:  # noqa: BLE001,S110 - a look that failed is a look that saw nothing yet
                pass
            time.sleep(interval_s)
        raise ScenarioError(f"{what}: not observed within {self.options.scaled(timeout_s):.0f} s")

    def wait_for_recovery(self, timeout_s: float = 90.0, stable_s: float = 3.0) -> float:
        """Wait until the probe's writes and reads have succeeded for `stable_s` without a failure.
        Stops at once (StopWaiting, with the reason) when the router keeps sending writes to a
        read-only member past the stack's own time to follow a leader: that does not mend."""
        probe = self.probe
        assert probe is not None
        watch = MisrouteWatch(lambda: router_follow(self.stack))
        looked = [0.0]

        def recovered() -> bool:
            if probe.stable_for(stable_s):
                return True
            now = time.monotonic()
            if now - looked[0] >= ROUTER_LOOK_S:
                looked[0] = now
                reason = None
                with contextlib.suppress(Exception):  # a look that failed says nothing
                    reason = watch.see(router_observation(self.stack), now)
                if reason is not None:
                    self.phase("stop-waiting", reason=reason)
                    raise StopWaiting(f"{NOT_RECOVERING}: {reason}")
            return False

        return self.wait_until(f"writes and reads succeeding for {stable_s:.0f} s", recovered, timeout_s,
                               interval_s=0.25)

    def add_workload(self, workload: W) -> W:
        """Start ``workload`` beside the load; the run stops it with the load and calls its
        final read after the steady state returns (a workload with ``on_fault(verb, fault)``
        is told of every inject and heal)."""
        self.phase("workload-start", workload=type(workload).__name__)
        workload.start()
        self.workloads.append(workload)
        return workload

    def _tell_workloads(self, verb: str, fault: Any) -> None:
        for w in list(self.workloads):
            hook = getattr(w, "on_fault", None)
            if hook is not None:
                with contextlib.suppress(Exception):
                    hook(verb, fault)

    def add_check(self, name: str, checker: Callable[[list[Op]], dict[str, Any]]) -> None:
        """A scenario-specific checker over the merged history (valid / invalid / unknown)."""
        self.post_checks.append((name, checker))

    def leader(self) -> str | None:
        return discover(self.stack).leader

    def wait_for_new_leader(self, old: str, timeout_s: float = 60.0) -> str:
        self.wait_until(f"a leader other than {old}",
                        lambda: self.leader() not in (None, old), timeout_s)
        return self.leader() or ""

    # -- lifecycle -------------------------------------------------------------
    def __enter__(self) -> ScenarioRun:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._t0_wall = time.time()
        self.run_start = time.monotonic()
        self.key_base = key_base()
        self.history = HistoryWriter(self.dir / "history-harness.jsonl", run_start=self.run_start)
        self.nemesis = Nemesis(self.stack, self.history)
        self.nemesis.listeners.append(  # an injection's phase starts at its fault op, not when it returned
            lambda verb, f: self.phase(f"{verb} {f.fault} {f.target}", fault=f.id,
                                       at=f.time if verb == "inject" else None))
        self.nemesis.listeners.append(lambda verb, f: self._fault_started() if verb == "inject" else None)
        self.nemesis.listeners.append(self._tell_workloads)
        self.phase("steady-state-before")
        self.nemesis.heal_all()
        if self.with_load:  # its interpreter starts while the steady state is checked; users wait for the gate
            self.locust = LocustLoad(self.stack.dsn(), self.dir, self.run_start, self.key_base,
                                     users=self.options.load_users, run_time_s=900,
                                     user_classes=user_classes_for(self.stack.capabilities()),
                                     workers=self.options.load_workers).start(gated=True)
        try:
            self.before = wait_for_steady_state(self.stack, timeout=self.options.scaled(120))
            self._write_json("steady-state-before.json", self.before.as_dict())
            before_list = self._record_patronictl("patronictl-before.txt")
            if not self.before.healthy:
                self._abort()
                raise SteadyStateError(f"steady state does not hold before the scenario: {self.before.summary()}")
            self._watch_alerts()
            if self.expected_alerts is not None:
                e = self.expected_alerts
                self.expect_alerts(*e.alerts, detect_s=e.detect_s, resolve_s=e.resolve_s)
        except BaseException:
            self._stop_gated_load()
            raise
        self.phase("load-start")
        self.probe = Probe(self.stack.dsn(), self.history, self.key_base,
                           period_s=self.options.probe_period_s).start()
        try:
            self.recorder = PhaseRecorder(self.stack, self.history).start()
        except Exception as exc:  # the timeline explains; it never stops a run
            self.phase("phase-recorder-unavailable", error=str(exc)[:200])
        if self.locust is not None:
            self.locust.open_gate()
        self._baseline()
        before_list.join(timeout=self.options.scaled(20))  # the picture before is taken before any fault
        if self.locust is not None and not self.locust.wait_running(self.options.scaled(30)):
            self.extra_reasons.append("load: the locust users recorded nothing within "
                                      f"{self.options.scaled(30):.0f} s of their start (see locust*.log)")
        return self

    def _baseline(self) -> None:
        """A baseline of successful ops before any fault: at least BASELINE_S of load, with the
        probe's writes and reads both succeeding (bounded; a stack that cannot answer shows
        in the verdict, not here)."""
        assert self.probe is not None
        started = time.monotonic()
        deadline = started + self.options.scaled(10)
        while time.monotonic() < deadline:
            elapsed = time.monotonic() - started
            if elapsed >= BASELINE_S and all(self.probe.last_ok[k] > started for k in ("write", "read")):
                return
            time.sleep(max(0.05, BASELINE_S - elapsed) if elapsed < BASELINE_S else 0.1)

    # -- alerts ------------------------------------------------------------------
    def _watch_alerts(self) -> None:
        """Read the stack's alert notifications into history-monitor.jsonl (when it has alerting)."""
        from harness.alerts import AlertWatcher, feed_for

        feed = feed_for(self.stack)
        if feed is None:
            return
        self._alert_history = HistoryWriter(self.dir / "history-monitor.jsonl", run_start=self.run_start)
        try:
            self.alerts = AlertWatcher(feed, self._alert_history, wall_zero=self._t0_wall).start()
        except PgchaosError as exc:
            self.extra_reasons.append(f"alerting: {exc}")
            self._alert_history.close()
            self._alert_history = self.alerts = None
        else:
            self.phase("alerts-watch", source=feed.source, firing=self.alerts.firing_names())

    def expect_alerts(self, *names: str, fault: Any = None, detect_s: float = 60.0,
                      resolve_s: float = 120.0) -> None:
        """The alerts ``fault`` (an injected fault; by default the next one) must fire within
        ``detect_s`` and that must resolve within ``resolve_s`` of its heal."""
        assert self.history is not None, "expect_alerts() inside `with ScenarioRun(...)`"
        detect_s = self.options.detect_bound(detect_s)
        AlertExpectation(tuple(names), detect_s, resolve_s)  # validates
        if self.alerts is None:
            self.figures.setdefault("detection", "not assessed: the stack has no alerting (manifest "
                                                 "[monitoring] alertmanager)")
            return
        value: dict[str, Any] = {"alerts": list(names), "detect_s": detect_s, "resolve_s": resolve_s}
        if fault is not None:
            value["fault"] = fault.id
        self.history.append(MONITOR, "info", "expect-alerts", value)

    def wait_for_alert(self, name: str, since: float, timeout_s: float = 60.0) -> float | None:
        """Hold (bounded) until alert ``name`` fires after time ``since`` — a fault that
        lasts until someone is paged; seconds waited, None when it did not fire or the
        stack has no alerting (the detection checker judges it either way). The bound
        is a time-to-detect target, so the timeout multiplier does not stretch it."""
        if self.alerts is None:
            return None
        start = time.monotonic()
        deadline = start + self.options.detect_bound(timeout_s)
        wall_since = self._t0_wall + since
        while time.monotonic() < deadline:
            with contextlib.suppress(PgchaosError):
                self.alerts.poll()
            if any(a.name == name and a.status == "firing" and a.received >= wall_since
                   for a in list(self.alerts.seen)):
                took = time.monotonic() - start
                self.phase("alert-fired", alert=name, after_s=round(took, 3))
                return took
            time.sleep(0.25)
        self.phase("alert-not-fired", alert=name, waited_s=round(time.monotonic() - start, 3))
        return None

    def _prometheus_url(self) -> str | None:
        mon = self.stack.manifest.monitoring
        if mon is None or not mon.prometheus:
            return None
        with contextlib.suppress(Exception):
            return f"http://{self.stack.endpoint(mon.prometheus, mon.prometheus_port)}"
        return None

    def _stop_alerts(self, settle_s: float = 0.0) -> None:
        """Wait up to ``settle_s`` in all for the alerts this run raised to resolve (what is
        still on its way included), then stop watching."""
        if self.alerts is None:
            return
        begun = time.monotonic()
        if settle_s > 0:
            # what the last fault or heal set off (a restarted member pages PostgresRestarted)
            # reaches the receiver a scrape, an evaluation and a notification later: watch up to
            # that long after it, and no longer once Prometheus shows nothing on its way
            last = max((p["time"] for p in self.phases if p["phase"].startswith(("inject ", "heal "))),
                       default=None)
            started = time.monotonic()
            deadline = started + (ALERT_PIPELINE_S - (self.now() - last) if last is not None else 0.0)
            prometheus = self._prometheus_url()
            settled = False
            while time.monotonic() < deadline:
                with contextlib.suppress(PgchaosError):
                    self.alerts.poll()
                if prometheus and last is not None and settled_since(
                        prometheus, self._t0_wall + last, self.alerts.firing_names(),
                        horizon_wall=time.time() + max(0.0, deadline - time.monotonic())):
                    self.phase("alerts-pipeline-settled")
                    settled = True
                    break
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
            if prometheus and last is not None and not settled:
                # past the grace, what Prometheus still has on its way (pending and able to fire
                # within the resolve bound, or firing and not yet delivered) is waited for: it
                # reaches the receiver, then its resolution is waited for like the others
                end = started + settle_s
                while time.monotonic() < end and on_their_way(
                        prometheus, self.alerts.firing_names(), time.time() + (end - time.monotonic())):
                    with contextlib.suppress(PgchaosError):
                        self.alerts.poll()
                    time.sleep(0.5)
                with contextlib.suppress(PgchaosError):
                    self.alerts.poll()
        if settle_s > 0 and self.alerts.raised_names():
            self.phase("alerts-resolve", firing=self.alerts.raised_names())
            quiet = self.alerts.wait_quiet(max(0.0, begun + settle_s - time.monotonic()))
            self.phase("alerts-resolved" if quiet else "alerts-still-firing", firing=self.alerts.raised_names())
        self.alerts.stop()
        assert self._alert_history is not None
        self._alert_history.close()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self._interrupted()  # no waiting and no verdict: the person wants out
            return
        if isinstance(exc, StopWaiting):  # the stack's failure, named: a verdict, not an error
            self.extra_reasons.append(str(exc))
        elif exc is not None and isinstance(exc, Exception):
            self.error = f"{type(exc).__name__}: {exc}"
        try:
            self._finish(failed=exc_type is not None)
        except BaseException:
            if exc_type is None:
                raise

    def _interrupted(self) -> None:
        self.phase("interrupted")
        self._stop_load()
        if self.nemesis is not None:
            with contextlib.suppress(Exception):
                self.nemesis.heal_all()
        with contextlib.suppress(Exception):
            self._stop_alerts()
        if self.history is not None:
            self.history.close()

    def pause_load(self) -> None:
        """Stop application traffic (the guide's first restore step)."""
        self.phase("load-pause")
        self._stop_load()
        self._paused_probes = getattr(self, "_paused_probes", 0) + 1

    def resume_load(self) -> None:
        """Resume traffic with a fresh probe (its own process ids and keys)."""
        self.phase("load-resume")
        self.probe = Probe(self.stack.dsn(), self.history, self.key_base,
                           period_s=self.options.probe_period_s,
                           process_offset=10 * self._paused_probes).start()

    def _abort(self) -> None:
        self._stop_recorder()
        with contextlib.suppress(Exception):
            self._stop_alerts()
        if self.history is not None:
            self.history.close()

    def _stop_gated_load(self) -> None:
        """A load started ahead of a run that did not start: stopped, never judged."""
        if self.locust is not None:
            with contextlib.suppress(Exception):
                self.locust.stop()
            self.locust = None

    def _fault_started(self) -> None:
        if self.recorder is not None:
            self.recorder.start_writes()

    def _stop_recorder(self) -> None:
        if self.recorder is not None:
            self.recorder.stop()
            self.recorder = None

    def _stop_load(self) -> None:
        self._stop_recorder()
        for w in self.workloads:
            with contextlib.suppress(Exception):
                w.stop()
        if self.locust is not None:
            with contextlib.suppress(PgchaosError):
                self.locust.stop()
        if self.probe is not None:
            self.probe.stop()
        if self.history is not None and not self.history.closed:
            # an op still open here was unavailable from its invocation to this point
            self.history.append(OBSERVER, "info", LOAD_STOP, None)

    def _finish(self, failed: bool) -> None:
        assert self.history is not None and self.nemesis is not None
        last = max((p["time"] for p in self.phases if p["phase"].startswith(("inject ", "heal "))),
                   default=None)
        wait = TAIL_S - (self.now() - last) if last is not None and not failed else 0.0
        if wait > 0:  # the RTO checker needs a stretch of traffic after the last fault or heal
            self.phase("tail-evidence", seconds=round(wait, 2))
            time.sleep(wait)
        self.phase("load-stop")
        self._stop_load()
        self.phase("heal-all")
        self.nemesis.heal_all()
        self.phase("steady-state-after")
        try:
            settle = self.options.scaled(self.options.settle_timeout_s)
            self.after = wait_for_steady_state(self.stack, timeout=settle)
        except PgchaosError as exc:
            self.extra_reasons.append(f"steady state not observable after the scenario: {exc}")
        if self.after is not None:
            self._write_json("steady-state-after.json", self.after.as_dict())
            if not self.after.healthy:
                self.extra_reasons.append(
                    f"steady state did not return after heal-all: {self.after.summary()}")
        after_list = self._record_patronictl("patronictl-after.txt")  # beside the alerts' settling
        resolve = max([120.0] + ([self.expected_alerts.resolve_s] if self.expected_alerts else []))
        self._stop_alerts(settle_s=self.options.scaled(resolve))
        self.phase("final-read")
        reader = Client(self.stack.dsn(), self.history, FINAL_READER)
        reader.read_all(self.key_base)
        reader.close()
        for w in self.workloads:
            try:
                w.final_read()
            except Exception as exc:  # the checker then says it cannot judge
                self.phase("workload-final-read-failed", workload=type(w).__name__, error=str(exc)[:200])
        after_list.join(timeout=self.options.scaled(20))
        self.phase("verdict")
        self.history.close()
        self._judge()
        if failed or not is_passing(self.verdict["verdict"]):
            self.save_logs()

    def _judge(self) -> None:
        paths = [self.dir / "history-harness.jsonl"]
        if self.locust is not None:
            paths += [p for p in self.locust.history_paths if p.exists()]
        if self._alert_history is not None:
            paths.append(self._alert_history.path)
        remap: dict[tuple[int, int], int] = {}
        ops = merge_histories(paths, remap=remap)
        write_history(self.dir / "history.jsonl", ops)
        for p in self.phases:  # a phase names its fault as history.jsonl numbers it, as the reasons do
            if type(p.get("fault")) is int:
                p["fault"] = remap.get((0, p["fault"]), p["fault"])
        target, waivers = None, []
        if self.target_row is not None:
            targets = load_targets(self.options.targets_path)
            target, waivers = targets.row(self.target_row), targets.waivers_for(self.target_row)
            if any(w.derive for w in waivers):  # bounds from the stack's own timings
                from harness.bounds import read_timings, resolve

                timings = None
                with contextlib.suppress(Exception):
                    timings = read_timings(self.stack)
                self.figures["timings"] = None if timings is None else timings.as_dict()
                waivers = resolve(waivers, timings, getattr(self.stack.manifest, "bounds", None))
        # one pipeline: every checker, the scenario's own checks included, composed in the verdict
        result = check_history(ops, target, waivers, backup_age_s=self.figures.get("backup_age_s"),
                               checks=dict(self.post_checks), margin=self.options.margin)
        result["history"] = str(self.dir / "history.jsonl")
        from harness.bounds import derived_bounds

        result["derived_bounds"] = derived_bounds(list(waivers))
        log_alerts = self.scan_logs()
        forced = [Finding(_run_code(r), "fail", r) for r in self.extra_reasons]
        forced += [Finding("log-gate", "fail", f"log gate: {a['service']}: {a['line']}")
                   for a in log_alerts if a["gate"]]
        if self.error is not None:
            forced.insert(0, Finding("error", "error", f"error: the scenario raised {self.error}"))
        if forced:
            force_verdict(result, "error" if self.error is not None else "fail", forced)
        result.update({
            "scenario": self.name,
            "wall_s": round(time.time() - self._t0_wall, 1),
            "steady_state": {"before": self.before.healthy if self.before else None,
                             "after": self.after.healthy if self.after else None},
            "figures": self.figures,
            "log_alerts": log_alerts,
            "phases": self.phases,
            "probe": {k: {"ops": s.ops, "mean_period_s": round(s.mean_period_s, 4)}
                      for k, s in (self.probe.stats.items() if self.probe else [])},
        })
        self.verdict = result
        self._write_json("verdict.json", result)
        from harness.report.timeline import render_timeline

        with contextlib.suppress(Exception):
            render_timeline(self.dir / "history.jsonl", result, self.dir / "timeline.png", ops=ops)

    # -- evidence ----------------------------------------------------------------
    def _record_patronictl(self, name: str) -> threading.Thread:
        """`patronictl list` into ``name`` in the run's folder, on a thread of its own (a
        `docker exec` the run need not wait for); the caller joins it."""
        def write() -> None:
            try:
                text = self.stack.patronictl_list()
            except Exception as exc:  # evidence for a person: its absence is said, never raised
                text = f"patronictl list failed: {type(exc).__name__}: {exc}"
            (self.dir / name).write_text(text)

        thread = threading.Thread(target=write, name=f"pgchaos-{name}", daemon=True)
        thread.start()
        return thread

    def _write_json(self, name: str, doc: Any) -> None:
        (self.dir / name).write_text(json.dumps(doc, indent=2, default=str))

    def scan_logs(self) -> list[dict[str, Any]]:
        """Log lines of this scenario's window that the gate fails or that are worth showing."""
        since = int(self._t0_wall) - 1
        alerts = []
        for service, container in self.stack.containers().items():
            try:
                text = container.logs(since=since).decode(errors="replace")
            except Exception:
                continue
            for line in text.splitlines():
                gate = bool(LOG_GATE.search(line))
                if gate or LOG_WATCH.search(line):
                    alerts.append({"service": service, "gate": gate, "line": line.strip()[:300]})
        return alerts[:200]

    def save_logs(self) -> None:
        logs = self.dir / "logs"
        logs.mkdir(exist_ok=True)
        for service, container in self.stack.containers().items():
            with contextlib.suppress(Exception):
                (logs / f"{service}.log").write_bytes(container.logs(since=int(self._t0_wall) - 5))


def _run_code(reason: str) -> str:
    """The finding code of a reason the run adds from outside the history."""
    if reason.startswith("load:"):
        return "load-not-running"
    if reason.startswith(NOT_RECOVERING):
        return "not-recovering"
    return "alerting" if reason.startswith("alerting") else "steady-state"


def failures_after_recovery(ops: list[Op], result: dict[str, Any]) -> dict[str, Any]:
    """The after-recovery checker (harness.checkers.after_recovery) over a verdict's faults.

    Writes or reads requested after the last heal and the last recovery that
    failed; kept here for callers of the old name."""
    from harness.checkers.after_recovery import after_recovery

    return after_recovery(ops, rto_result=result, exclude_processes=(FINAL_READER,))


def verdict_message(verdict: dict[str, Any]) -> str:
    """One readable paragraph: verdict, figures and reasons."""
    rto, rpo = verdict.get("rto_s", {}), verdict.get("rpo", {})
    lines = [f"{verdict.get('scenario')}: {verdict.get('verdict')} "
             f"(RTO write={rto.get('write')} read={rto.get('read')}; lost={rpo.get('lost')} "
             f"unknown={rpo.get('unknown')} unexpected={rpo.get('unexpected')})"]
    lines += [f"  - {r}" for r in verdict.get("reasons", [])]
    return "\n".join(lines)
