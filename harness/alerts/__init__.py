"""Alerting as seen by the on-call: the notifications Alertmanager sends,
read from the stack's webhook receiver (or Alertmanager's API), recorded in
the history as ``monitor`` ops on the faults' timeline."""

from harness.alerts.feed import Alert, AlertFeed, AlertmanagerFeed, WebhookFeed, active_alerts, feed_for
from harness.alerts.watcher import AlertWatcher

__all__ = ["Alert", "AlertFeed", "AlertWatcher", "AlertmanagerFeed", "WebhookFeed", "active_alerts", "feed_for"]
