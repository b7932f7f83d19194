"""Where alert notifications come from.

:class:`WebhookFeed` reads what the stack's webhook receiver got from
Alertmanager (each firing and resolution, stamped on arrival: what an on-call
would have been paged with). :class:`AlertmanagerFeed` polls Alertmanager's
API instead, for a user's own Alertmanager that pgchaos cannot point at its
receiver; its times are those of the poll. Both are read over 127.0.0.1 only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import requests

from harness.errors import PgchaosError

if TYPE_CHECKING:
    from harness.stack.stack import Stack

TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Alert:
    """One notification: an alert firing or resolved, and when it arrived (epoch seconds)."""

    name: str
    status: str  # "firing" | "resolved"
    received: float
    labels: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    fingerprint: str = ""
    starts_at: str | None = None

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    def as_value(self) -> dict[str, Any]:
        """The ``value`` of its history op."""
        labels = {k: v for k, v in self.labels.items() if k not in ("alertname", "severity")}
        return {"alert": self.name, "status": self.status, "severity": self.severity,
                "labels": labels, "summary": self.summary, "fingerprint": self.fingerprint,
                "starts_at": self.starts_at}


class AlertFeed(Protocol):
    """Notifications since the last call (the first call returns what is firing now)."""

    source: str

    def poll(self) -> list[Alert]: ...


def _alert(doc: dict[str, Any], status: str, received: float) -> Alert:
    labels = {str(k): str(v) for k, v in (doc.get("labels") or {}).items()}
    return Alert(labels.get("alertname", "?"), status, received, labels,
                 str((doc.get("annotations") or {}).get("summary", "")),
                 str(doc.get("fingerprint") or ""), doc.get("startsAt"))


def active_alerts(alertmanager_url: str) -> list[Alert]:
    """Alerts Alertmanager holds as active now (not silenced or inhibited)."""
    try:
        resp = requests.get(f"{alertmanager_url}/api/v2/alerts",
                            params={"active": "true", "silenced": "false", "inhibited": "false"},
                            timeout=TIMEOUT_S)
        resp.raise_for_status()
    except requests.RequestException as exc:
        raise PgchaosError(f"Alertmanager at {alertmanager_url} does not answer: {exc}") from exc
    now = time.time()
    return sorted((_alert(a, "firing", now) for a in resp.json()), key=lambda a: (a.name, a.fingerprint))


class WebhookFeed:
    """The stack's webhook receiver (``GET /notifications?after=N``)."""

    source = "webhook"

    def __init__(self, receiver_url: str, alertmanager_url: str | None = None) -> None:
        self.url = receiver_url
        self.alertmanager_url = alertmanager_url
        self._next: int | None = None
        self.resynced = False

    def poll(self) -> list[Alert]:
        """New notifications; after a restart of the receiver (a redeployed stack), a
        resync: what Alertmanager holds as firing now, with ``resynced`` set."""
        self.resynced = False
        if self._next is None:  # first call: skip history, report what is firing now
            self._next = self._fetch(0)[0]
            return active_alerts(self.alertmanager_url) if self.alertmanager_url else []
        after = self._next
        self._next, items = self._fetch(after)
        if self._next < after:  # a new receiver: its notifications start again from 0
            self._next, items = self._fetch(0)
            self.resynced = True
            now = active_alerts(self.alertmanager_url) if self.alertmanager_url else []
            return now + [_alert(i, str(i.get("status")), float(i["received"])) for i in items]
        return [_alert(i, str(i.get("status")), float(i["received"])) for i in items]

    def _fetch(self, after: int) -> tuple[int, list[dict[str, Any]]]:
        try:
            resp = requests.get(f"{self.url}/notifications", params={"after": after}, timeout=TIMEOUT_S)
            resp.raise_for_status()
            doc = resp.json()
        except (requests.RequestException, ValueError) as exc:
            raise PgchaosError(f"alert receiver at {self.url} does not answer: {exc}") from exc
        return int(doc["next"]), list(doc["items"])


class AlertmanagerFeed:
    """Alertmanager's API, polled: a new active alert is a firing, a gone one a resolution."""

    source = "alertmanager-api"

    def __init__(self, alertmanager_url: str) -> None:
        self.url = alertmanager_url
        self._active: dict[str, Alert] | None = None

    def poll(self) -> list[Alert]:
        now_active = {a.fingerprint: a for a in active_alerts(self.url)}
        if self._active is None:
            self._active = now_active
            return list(now_active.values())
        now = time.time()
        out = [a for fp, a in now_active.items() if fp not in self._active]
        out += [Alert(a.name, "resolved", now, a.labels, a.summary, a.fingerprint, a.starts_at)
                for fp, a in self._active.items() if fp not in now_active]
        self._active = now_active
        return out


def feed_for(stack: Stack) -> AlertFeed | None:
    """The stack's alert feed, or None when its manifest names no Alertmanager."""
    mon = stack.manifest.monitoring
    if mon is None or not mon.alertmanager:
        return None
    am = f"http://{stack.endpoint(mon.alertmanager, mon.alertmanager_port)}"
    if mon.alert_receiver:
        return WebhookFeed(f"http://{stack.endpoint(mon.alert_receiver, mon.alert_receiver_port)}", am)
    return AlertmanagerFeed(am)
