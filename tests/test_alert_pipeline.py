"""harness.alerts.pipeline: when Prometheus shows nothing on its way, against canned
answers of its HTTP API served on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from harness.alerts.pipeline import _epoch, on_their_way, settled_since

T0 = 1_800_000_000.0  # the heal, epoch seconds


def stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


def answers(scraped: float = T0 + 2, evaluated: float = T0 + 3, alerts: list[dict[str, Any]] | None = None,
            slow_group_evaluated: float = T0 - 9) -> dict[str, Any]:
    rule = {"name": "PostgresRestarted", "duration": 2, "alerts": alerts or []}
    return {
        "/api/v1/targets": {"activeTargets": [{"lastScrape": stamp(scraped), "scrapeInterval": "2s"},
                                              {"lastScrape": stamp(scraped - 1), "scrapeInterval": "1s"}]},
        "/api/v1/rules": {"groups": [
            {"name": "patroni", "interval": 2, "lastEvaluation": stamp(evaluated), "rules": [rule]},
            {"name": "backups", "interval": 10, "lastEvaluation": stamp(slow_group_evaluated), "rules": [
                {"name": "BackupNeverSucceeded", "duration": 3600,
                 "alerts": [{"state": "pending", "activeAt": stamp(T0 - 100),
                             "labels": {"alertname": "BackupNeverSucceeded"}}]}]},
        ]},
    }


@pytest.fixture
def prometheus() -> Iterator[dict[str, Any]]:
    state: dict[str, Any] = {"answers": answers()}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            data = state["answers"].get(self.path.split("?")[0])
            body = json.dumps({"status": "success", "data": data}).encode()
            self.send_response(200 if data is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def test_epoch_reads_prometheus_nanosecond_times() -> None:
    assert _epoch(stamp(T0 + 0.25)) == pytest.approx(T0 + 0.25, abs=1e-6)
    assert _epoch("0001-01-01T00:00:00Z") is None and _epoch(None) is None


def test_settled_once_scraped_and_evaluated_after_the_heal_with_nothing_on_its_way(prometheus) -> None:
    assert settled_since(prometheus["url"], T0, delivered=[], horizon_wall=T0 + 8)


def test_not_settled_before_every_target_was_scraped_after_the_heal(prometheus) -> None:
    prometheus["answers"] = answers(scraped=T0 + 0.5)  # the second target's last scrape is T0 - 0.5
    assert not settled_since(prometheus["url"], T0, delivered=[], horizon_wall=T0 + 8)


def test_not_settled_before_the_fast_groups_evaluated_after_those_scrapes(prometheus) -> None:
    # targets on 2 s and 1 s ticks, last scraped at T0 + 3.8 and T0 + 2.8: their first scrapes
    # after the heal began at T0 + 1.8 and T0 + 0.8 and took 0.1 s
    prometheus["answers"] = answers(scraped=T0 + 3.8, evaluated=T0 + 1.5)
    for target in prometheus["answers"]["/api/v1/targets"]["activeTargets"]:
        target["lastScrapeDuration"] = 0.1
    assert not settled_since(prometheus["url"], T0, delivered=[], horizon_wall=T0 + 8)
    # an evaluation after those two scrapes had finished: settled, without waiting a whole
    # interval of the slowest target past the heal
    prometheus["answers"]["/api/v1/rules"]["groups"][0]["lastEvaluation"] = stamp(T0 + 1.95)
    assert settled_since(prometheus["url"], T0, delivered=[], horizon_wall=T0 + 8)


def test_a_pending_alert_that_can_fire_in_time_keeps_the_wait(prometheus) -> None:
    pending = {"state": "pending", "activeAt": stamp(T0 + 1), "labels": {"alertname": "PostgresRestarted"}}
    prometheus["answers"] = answers(alerts=[pending])
    assert not settled_since(prometheus["url"], T0, delivered=[], horizon_wall=T0 + 8)
    # its `for` ends after the horizon: it cannot arrive within the wait
    assert settled_since(prometheus["url"], T0, delivered=[], horizon_wall=T0 + 2)


def test_a_firing_alert_settles_only_once_delivered(prometheus) -> None:
    firing = {"state": "firing", "activeAt": stamp(T0 + 1), "labels": {"alertname": "PostgresRestarted"}}
    prometheus["answers"] = answers(alerts=[firing])
    assert not settled_since(prometheus["url"], T0, delivered=[], horizon_wall=T0 + 8)
    assert settled_since(prometheus["url"], T0, delivered=["PostgresRestarted"], horizon_wall=T0 + 8)


def test_no_answer_is_never_settled() -> None:
    assert not settled_since("http://127.0.0.1:9", T0, delivered=[], horizon_wall=T0 + 8)


def test_on_their_way_past_the_grace_ignores_freshness_and_says_when_prometheus_is_silent(prometheus) -> None:
    """Past the grace only alerts count: a pending one that can still fire within the resolve
    bound, or a firing one the receiver has not got (targets not scraped since do not matter)."""
    pending = {"state": "pending", "activeAt": stamp(T0 + 1), "labels": {"alertname": "PostgresRestarted"}}
    prometheus["answers"] = answers(scraped=T0 - 5, alerts=[pending])
    assert on_their_way(prometheus["url"], delivered=[], horizon_wall=T0 + 180) is True
    assert on_their_way(prometheus["url"], delivered=[], horizon_wall=T0 + 2) is False  # its `for` ends later
    firing = {"state": "firing", "activeAt": stamp(T0 + 1), "labels": {"alertname": "PostgresRestarted"}}
    prometheus["answers"] = answers(scraped=T0 - 5, alerts=[firing])
    assert on_their_way(prometheus["url"], delivered=[], horizon_wall=T0 + 180) is True
    assert on_their_way(prometheus["url"], delivered=["PostgresRestarted"], horizon_wall=T0 + 180) is False
    assert on_their_way("http://127.0.0.1:9", delivered=[], horizon_wall=T0 + 180) is None
