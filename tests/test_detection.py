"""Detection over synthetic histories: expected alerts, time-to-detect and
time-to-resolve, alerts left firing, unexpected pages; the watcher over a
scripted feed; the monitor ops in the history contract."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from test_verdict import judge, run

from harness.alerts import Alert, AlertWatcher
from harness.checkers.compose import UNKNOWN
from harness.checkers.detection import detection
from harness.history import HistoryFormatError, HistoryWriter, Op, merge_histories, read_history, write_history
from harness.verdict import check_history


def with_alerts(ops: list[Op], *alerts: tuple[float, str, str, str], expect: dict[str, Any] | None = None,
                watch: tuple[float, float] | None = (0.5, 65.0)) -> list[Op]:
    """``ops`` plus a watch window, an expectation (before the fault at 10 s) and
    alert transitions ``(time, name, status, severity)``."""
    extra: list[tuple[float, Op]] = []

    def add(t: float, f: str, value: dict[str, Any]) -> None:
        extra.append((t, Op(0, t, "monitor", "info", f, value)))

    if watch is not None:
        add(watch[0], "watch", {"state": "start", "source": "webhook", "firing": []})
        add(watch[1], "watch", {"state": "end", "source": "webhook", "firing": []})
    if expect is not None:
        add(1.0, "expect-alerts", expect)
    for t, name, status, severity in alerts:
        add(t, "alert", {"alert": name, "status": status, "severity": severity, "labels": {},
                         "fingerprint": f"fp-{name}"})
    merged = sorted([(op.time, 0, op) for op in ops] + [(t, 1, op) for t, op in extra], key=lambda x: x[:2])
    out = []
    for i, (_, _, op) in enumerate(merged):
        op.index = i
        out.append(op)
    fault = next(o.index for o in out if o.process == "nemesis")
    for op in out:  # the observation and the heal name the fault by its new index
        if op.f in ("heal", "fault-effect"):
            op.value = {**op.value, "fault": fault}
    return out


EXPECT = {"alerts": ["PatroniMemberDown"], "detect_s": 60, "resolve_s": 120}


def test_detected_and_resolved_in_time_passes() -> None:
    ops = with_alerts(run(outage_s=3.0), (13.0, "PatroniMemberDown", "firing", "critical"),
                      (63.5, "PatroniMemberDown", "resolved", "critical"), expect=EXPECT)
    res = detection(ops)
    assert res["valid"] is True, res
    (exp,) = res["expectations"]
    member = exp["alerts"]["PatroniMemberDown"]
    assert member["detect_s"] == pytest.approx(3.0) and member["resolve_s"] == pytest.approx(2.5)
    assert res["detect_s"] == pytest.approx(3.0)
    verdict = judge(ops)
    assert verdict["verdict"] == "pass" and verdict["detection"]["detect_s"] == pytest.approx(3.0)


def test_undetected_fault_fails_with_the_reason() -> None:
    ops = with_alerts(run(outage_s=3.0), expect=EXPECT)
    res = detection(ops)
    assert res["valid"] is False
    assert "fault not detected: PatroniMemberDown did not fire" in res["reason"]
    verdict = judge(ops)
    assert verdict["verdict"] == "fail"
    assert any(r.startswith("detection: fault not detected") for r in verdict["reasons"])


def test_late_detection_fails() -> None:
    ops = with_alerts(run(outage_s=3.0), (58.0, "PatroniMemberDown", "firing", "critical"),
                      (63.0, "PatroniMemberDown", "resolved", "critical"),
                      expect={**EXPECT, "detect_s": 30})
    res = detection(ops)
    assert res["valid"] is False and "over the 30 s time-to-detect target" in res["reason"]


def test_alert_still_firing_at_the_end_fails() -> None:
    ops = with_alerts(run(outage_s=3.0), (13.0, "PatroniMemberDown", "firing", "critical"), expect=EXPECT)
    res = detection(ops)
    assert res["valid"] is False and "PatroniMemberDown still firing at the end" in res["reason"]
    # an alert nobody expected that is left firing fails too
    ops = with_alerts(run(outage_s=3.0), (13.0, "PatroniMemberDown", "firing", "critical"),
                      (63.0, "PatroniMemberDown", "resolved", "critical"),
                      (20.0, "DataVolumeUsageHigh", "firing", "warning"), expect=EXPECT)
    assert detection(ops)["reason"] == "alert DataVolumeUsageHigh still firing at the end"


def test_slow_resolution_fails_and_early_resolution_counts_zero() -> None:
    slow = with_alerts(run(outage_s=3.0), (13.0, "PatroniMemberDown", "firing", "critical"),
                       (64.0, "PatroniMemberDown", "resolved", "critical"), expect={**EXPECT, "resolve_s": 1})
    assert "over the 1 s time-to-resolve target" in detection(slow)["reason"]
    early = with_alerts(run(outage_s=3.0), (13.0, "PatroniMemberDown", "firing", "critical"),
                        (30.0, "PatroniMemberDown", "resolved", "critical"), expect=EXPECT)
    member = detection(early)["expectations"][0]["alerts"]["PatroniMemberDown"]
    assert member["resolve_s"] == 0.0 and member["firing_s"] == pytest.approx(17.0)


def test_unexpected_critical_alerts_are_listed_not_failed() -> None:
    ops = with_alerts(run(outage_s=3.0), (13.0, "PatroniMemberDown", "firing", "critical"),
                      (14.0, "HAProxyPrimaryWithoutServers", "firing", "critical"),
                      (20.0, "HAProxyPrimaryWithoutServers", "resolved", "critical"),
                      (15.0, "PgBouncerClientsWaiting", "firing", "warning"),
                      (16.0, "PgBouncerClientsWaiting", "resolved", "warning"),
                      (63.0, "PatroniMemberDown", "resolved", "critical"), expect=EXPECT)
    res = detection(ops)
    assert res["valid"] is True
    assert list(res["unexpected_critical"]) == ["HAProxyPrimaryWithoutServers"]
    assert any("HAProxyPrimaryWithoutServers" in n for n in judge(ops)["notes"])


def test_alert_firing_before_the_fault_does_not_count_as_detection() -> None:
    ops = with_alerts(run(outage_s=3.0), (5.0, "PatroniMemberDown", "firing", "critical"),
                      (63.0, "PatroniMemberDown", "resolved", "critical"), expect=EXPECT)
    assert "fault not detected" in detection(ops)["reason"]


def test_no_watch_is_unknown_and_no_alerting_runs_no_detection() -> None:
    ops = with_alerts(run(outage_s=3.0), expect=EXPECT, watch=None)
    assert detection(ops)["valid"] == UNKNOWN
    plain = judge(run(outage_s=3.0))
    assert "detection" not in plain["checkers"] and plain["detection"] is None


def test_expectation_bound_to_a_named_fault() -> None:
    ops = run(outage_s=3.0)
    ops.append(Op(len(ops), 61.5, "nemesis", "info", "latency", {"target": "replication-pg1"}))
    fault_index = len(ops) - 1
    ops.append(Op(len(ops), 64.0, "nemesis", "info", "heal", {"target": "replication-pg1", "fault": fault_index}))
    ops = with_alerts(ops, (62.5, "ReplicationLagWarning", "firing", "warning"),
                      (64.5, "ReplicationLagWarning", "resolved", "warning"),
                      watch=(0.5, 66.0))
    target = next(op.index for op in ops if op.f == "latency")
    ops.insert(0, Op(0, 0.6, "monitor", "info", "expect-alerts",
                     {"alerts": ["ReplicationLagWarning"], "fault": target}))
    for i, op in enumerate(ops):
        op.index = i
    target = next(op.index for op in ops if op.f == "latency")
    ops[0].value["fault"] = target
    (exp,) = detection(ops)["expectations"]
    assert (exp["f"], exp["detect_s"]) == ("latency", pytest.approx(1.0))
    assert exp["alerts"]["ReplicationLagWarning"]["resolve_s"] == pytest.approx(0.5)


def test_monitor_ops_are_part_of_the_history_contract(tmp_path: Path) -> None:
    ops = with_alerts(run(outage_s=3.0), (13.0, "PatroniMemberDown", "firing", "critical"),
                      (63.0, "PatroniMemberDown", "resolved", "critical"), expect=EXPECT)
    path = tmp_path / "h.jsonl"
    write_history(path, ops)
    again = read_history(path)
    assert [op.to_dict() for op in again] == [op.to_dict() for op in ops]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"index": 0, "time": 0.0, "process": "pager", "type": "info",
                               "f": "alert", "value": {}}) + "\n")
    with pytest.raises(HistoryFormatError, match="monitor"):
        read_history(bad)


def test_merge_keeps_an_expectation_on_its_fault(tmp_path: Path) -> None:
    a, b = HistoryWriter(tmp_path / "a.jsonl", run_start=0.0), HistoryWriter(tmp_path / "b.jsonl", run_start=0.0)
    b.append("monitor", "info", "watch", {"state": "start", "firing": []}, time=0.1)
    a.append(1, "invoke", "write", 1, time=0.2)
    fault = a.append("nemesis", "info", "kill", {"target": "pg1"}, time=0.3)
    a.append("monitor", "info", "expect-alerts", {"alerts": ["X"], "fault": fault.index}, time=0.4)
    a.close()
    b.close()
    merged = merge_histories([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    kill = next(op for op in merged if op.f == "kill")
    expect = next(op for op in merged if op.f == "expect-alerts")
    assert expect.value["fault"] == kill.index != fault.index


class ScriptedFeed:
    """A feed returning prepared batches (the watcher's logic, not the network)."""

    source = "scripted"

    def __init__(self, *batches: list[Alert], resync_at: int | None = None) -> None:
        self.batches = list(batches)
        self.calls = 0
        self.resync_at = resync_at
        self.resynced = False

    def poll(self) -> list[Alert]:
        self.calls += 1
        self.resynced = self.calls == self.resync_at
        return self.batches.pop(0) if self.batches else []


def alert(name: str, status: str, t: float, fp: str | None = None) -> Alert:
    return Alert(name, status, t, {"alertname": name, "severity": "critical"}, "", fp or name)


def test_watcher_records_transitions_once(tmp_path: Path) -> None:
    t0 = time.time()
    feed = ScriptedFeed([alert("Old", "firing", t0)],
                        [alert("A", "firing", t0 + 2), alert("A", "firing", t0 + 2.5)],
                        [alert("A", "resolved", t0 + 4), alert("B", "resolved", t0 + 4)])
    writer = HistoryWriter(tmp_path / "m.jsonl", run_start=0.0)
    watcher = AlertWatcher(feed, writer, wall_zero=t0, period_s=3600).start()
    assert watcher.poll() == [alert("A", "firing", t0 + 2)]
    assert watcher.raised_names() == ["A"] and watcher.firing_names() == ["A", "Old"]
    watcher.poll()
    assert watcher.raised_names() == [] and watcher.wait_quiet(0.1)
    end = watcher.stop()
    writer.close()
    ops = read_history(tmp_path / "m.jsonl")
    assert [(op.f, op.value.get("alert") or op.value["state"], op.value.get("status")) for op in ops] == [
        ("watch", "start", None), ("alert", "A", "firing"), ("alert", "A", "resolved"), ("watch", "end", None)]
    assert [op.time for op in ops][1:3] == [2.0, 4.0]
    assert [a["alert"] for a in end["firing"]] == ["Old"]


def test_watcher_resync_resolves_what_the_new_monitoring_does_not_hold(tmp_path: Path) -> None:
    t0 = time.time()
    feed = ScriptedFeed([], [alert("A", "firing", t0 + 1)], [alert("B", "firing", t0 + 3)], resync_at=3)
    writer = HistoryWriter(tmp_path / "m.jsonl", run_start=0.0)
    watcher = AlertWatcher(feed, writer, wall_zero=t0, period_s=3600).start()
    watcher.poll()
    changed = watcher.poll()
    assert sorted((a.name, a.status) for a in changed) == [("A", "resolved"), ("B", "firing")]
    watcher.stop()
    writer.close()
    resolved = [op for op in read_history(tmp_path / "m.jsonl") if op.value.get("status") == "resolved"]
    assert resolved[0].value["resync"] is True


def test_check_history_runs_detection_only_when_watched() -> None:
    ops = with_alerts(run(outage_s=3.0), expect=EXPECT)
    assert check_history(ops)["checkers"]["detection"]["valid"] is False


def test_timeline_draws_an_alert_lane_and_the_summary_shows_time_to_detect(tmp_path: Path) -> None:
    from harness.report.summary import write_summary
    from harness.report.timeline import Timeline, alert_span_count, build_figure

    ops = with_alerts(run(outage_s=3.0), (13.0, "PatroniMemberDown", "firing", "critical"),
                      (14.0, "PgBouncerClientsWaiting", "firing", "warning"),
                      (63.0, "PatroniMemberDown", "resolved", "critical"), expect=EXPECT)
    timeline = Timeline.from_ops(ops)
    spans = timeline.alert_spans()
    assert [(s["alert"], s["stop"], s["expected"]) for s in spans] == [
        ("PatroniMemberDown", 63.0, True), ("PgBouncerClientsWaiting", None, False)]
    assert "alert" not in timeline.kinds  # monitor ops are not load
    verdict = {**judge(ops), "scenario": "s"}
    assert alert_span_count(build_figure(timeline, verdict)) == 2
    assert alert_span_count(build_figure(Timeline.from_ops(run(outage_s=3.0)), verdict)) == 0
    (row,) = write_summary([verdict], tmp_path)
    assert row["detect_s"] == pytest.approx(3.0) and row["resolve_s"] == pytest.approx(2.0)
    assert "| 3.0 s | 2.0 s |" in (tmp_path / "summary.md").read_text()


def test_alertmanager_feed_turns_the_api_into_transitions(tmp_path: Path) -> None:
    """A user's own Alertmanager (no receiver of ours): its API polled, a new active
    alert is a firing and a gone one a resolution (served here by a stand-in on 127.0.0.1)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from harness.alerts import AlertmanagerFeed, WebhookFeed

    active: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.startswith("/api/v2/alerts"):
                body: Any = active
            else:
                after = int(self.path.split("after=")[1])
                body = {"next": len(notes), "items": notes[after:]}
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        def am_alert(name: str) -> dict[str, Any]:
            return {"labels": {"alertname": name, "severity": "critical"}, "annotations": {"summary": name},
                    "fingerprint": f"fp-{name}", "startsAt": "2026-11-26T00:00:00Z"}

        active.append(am_alert("Old"))
        feed = AlertmanagerFeed(url)
        assert [(a.name, a.status) for a in feed.poll()] == [("Old", "firing")]
        active.append(am_alert("New"))
        assert [(a.name, a.status) for a in feed.poll()] == [("New", "firing")]
        active.pop(0)
        assert [(a.name, a.status, a.summary) for a in feed.poll()] == [("Old", "resolved", "Old")]

        notes.append({"received": 1.0, "status": "firing", **am_alert("Gone")})
        hook = WebhookFeed(url, url)
        assert [a.name for a in hook.poll()] == ["New"]  # what is firing now, not the old notifications
        notes.append({"received": 2.0, "status": "resolved", **am_alert("New")})
        assert [(a.name, a.status, a.received) for a in hook.poll()] == [("New", "resolved", 2.0)]
        notes.clear()  # a new receiver (redeployed stack): counts start again
        notes.append({"received": 3.0, "status": "firing", **am_alert("Again")})
        assert [a.name for a in hook.poll()] == ["New", "Again"] and hook.resynced
    finally:
        server.shutdown()


def test_alert_settle_spends_its_resolve_bound_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a run, alerts still on their way and then their resolution share one bound:
    an alert that never resolves costs the bound once, not twice."""
    import harness.scenario as scenario

    asked: list[float] = []

    class Alerts:
        def poll(self) -> None: ...
        def firing_names(self) -> list[str]: return ["PatroniMemberDown"]
        def raised_names(self) -> list[str]: return ["PatroniMemberDown"]
        def stop(self) -> None: ...

        def wait_quiet(self, timeout_s: float) -> bool:
            asked.append(timeout_s)
            return False

    class Closing:
        def close(self) -> None: ...

    monkeypatch.setattr(scenario, "settled_since", lambda *a, **k: False)
    monkeypatch.setattr(scenario, "on_their_way", lambda *a, **k: True)  # never arrives
    run_ = scenario.ScenarioRun.__new__(scenario.ScenarioRun)
    run_.alerts, run_._alert_history, run_.phases = Alerts(), Closing(), [{"phase": "heal kill x", "time": 0.0}]
    monkeypatch.setattr(run_, "now", lambda: 1000.0, raising=False)  # the pipeline's grace long past
    monkeypatch.setattr(run_, "_prometheus_url", lambda: "http://127.0.0.1:9", raising=False)
    monkeypatch.setattr(run_, "phase", lambda *a, **k: None, raising=False)
    run_._stop_alerts(settle_s=0.6)
    assert asked and asked[0] <= 0.1, asked  # what the on-their-way wait left: nothing (was 0.6)
