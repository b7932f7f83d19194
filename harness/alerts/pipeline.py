"""Whether anything is still on its way through the alerting pipeline.

After a heal, an alert it sets off (a restarted member pages
PostgresRestarted) reaches the receiver a scrape, a rule evaluation, its
``for`` and a notification later. Rather than always waiting the longest such
delay, :func:`settled_since` asks Prometheus: once every target was scraped
after the moment of interest and every fast rule group was evaluated after
those scrapes, an alert that moment set off is visible as *pending* or
*firing*; when there is none that the receiver has not already delivered,
nothing more is coming. Read over 127.0.0.1 only.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

import requests

TIMEOUT_S: Final = 2.0
FAST_GROUP_S: Final = 4.0  # rule groups evaluated at most this often must have caught up


def _epoch(stamp: str | None) -> float | None:
    """Prometheus's RFC 3339 time (nanoseconds, 'Z') as epoch seconds; None for the zero time."""
    if not stamp or stamp.startswith("0001-"):
        return None
    head, _, frac = stamp.rstrip("Z").partition(".")
    try:
        base = datetime.fromisoformat(head + "+00:00").timestamp()
    except ValueError:
        return None
    digits = "".join(ch for ch in frac if ch.isdigit())[:6]
    return base + (int(digits) / 10 ** len(digits) if digits else 0.0)


def _duration(text: str | None) -> float:
    """A Prometheus duration (``2s``, ``1m30s``, ``500ms``) in seconds; 0 when absent."""
    total, number = 0.0, ""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    i, text = 0, text or ""
    while i < len(text):
        if text[i].isdigit() or text[i] == ".":
            number += text[i]
            i += 1
            continue
        unit = "ms" if text[i:i + 2] == "ms" else text[i]
        total += float(number or 0) * units.get(unit, 0.0)
        number, i = "", i + len(unit)
    return total


def _get(url: str, path: str) -> dict[str, Any]:
    resp = requests.get(f"{url}{path}", timeout=TIMEOUT_S)
    resp.raise_for_status()
    data = resp.json()["data"]
    return data if isinstance(data, dict) else {}


def settled_since(prometheus_url: str, since_wall: float, delivered: Iterable[str],
                  horizon_wall: float | None = None) -> bool:
    """True when Prometheus has looked at the stack since ``since_wall`` (every active target
    scraped after it, every rule group of interval ≤ :data:`FAST_GROUP_S` evaluated after
    each target's first scrape after it had finished)
    and no alert is on its way: none firing outside ``delivered`` (names the
    receiver already got), none pending that could fire by ``horizon_wall`` (its ``for``
    ends by then; a pending alert with a long ``for``, such as a backup-age rule, cannot).
    False while that is not yet so, or when Prometheus does not answer: the caller then
    keeps waiting its bounded grace."""
    horizon = horizon_wall if horizon_wall is not None else since_wall
    try:
        targets = _get(prometheus_url, "/api/v1/targets?state=active").get("activeTargets", [])
        scraped = [_epoch(t.get("lastScrape")) for t in targets]
        if not scraped or any(s is None or s < since_wall for s in scraped):
            return False
        looked = max(_first_scrape_done(t, since_wall) for t in targets)
        groups = _get(prometheus_url, "/api/v1/rules?type=alert").get("groups", [])
        for group in groups:
            if float(group.get("interval") or 0) <= FAST_GROUP_S:
                evaluated = _epoch(group.get("lastEvaluation"))
                if evaluated is None or evaluated < looked:
                    return False
        return not _alerts_on_their_way(groups, set(delivered), horizon)
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return False


def _first_scrape_done(target: dict[str, Any], since_wall: float) -> float:
    """When the target's first scrape after ``since_wall`` had finished: Prometheus scrapes a
    target on a fixed tick, so that scrape began a whole number of intervals before its last
    one (without an interval: its last scrape)."""
    last = _epoch(target.get("lastScrape"))
    assert last is not None
    interval = _duration(target.get("scrapeInterval"))
    first = last - (interval * int((last - since_wall) // interval) if interval > 0 else 0.0)
    return first + float(target.get("lastScrapeDuration") or 0.0)


def on_their_way(prometheus_url: str, delivered: Iterable[str], horizon_wall: float) -> bool | None:
    """Whether Prometheus has an alert on its way to the receiver: firing outside ``delivered``,
    or pending with its ``for`` ending by ``horizon_wall``; None when Prometheus does not answer."""
    try:
        groups = _get(prometheus_url, "/api/v1/rules?type=alert").get("groups", [])
        return _alerts_on_their_way(groups, set(delivered), horizon_wall)
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return None


def _alerts_on_their_way(groups: list[dict[str, Any]], known: set[str], horizon: float) -> bool:
    for group in groups:
        for rule in group.get("rules", []):
            for alert in rule.get("alerts") or []:
                state = alert.get("state")
                name = (alert.get("labels") or {}).get("alertname", rule.get("name", "?"))
                if state == "firing" and name not in known:
                    return True
                active = _epoch(alert.get("activeAt"))
                if state == "pending" and (active is None or active + float(rule.get("duration") or 0) <= horizon):
                    return True
    return False
