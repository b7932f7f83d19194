"""The daily backup is watched: its success is a metric (node exporter's
textfile collector reads what daily-backup.sh writes), and "no successful
backup in 24 h" pages the on-call (BackupTooOld).

The 24 hours cannot pass in a test: the fault moves the recorded last success
back 25 hours (what the metric would read a day after backups stopped); the
heal is the runbook's fix, running the daily backup again. The alert must
fire, and resolve once the backup has run. Row backup-monitoring: no
client-facing outage is involved, so the load must see none (over 1 s fails)
and lose nothing."""

from __future__ import annotations

import time

import pytest
import requests

from conftest import assert_verdict
from harness.nemesis.faults import Heal

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.docker,
    pytest.mark.requires("tools", "alerting", "monitoring"),
    pytest.mark.target("backup-monitoring"),
]

STALE_S = 25 * 3600
METRIC = "pgchaos_backup_last_success_timestamp_seconds"


def prometheus_age(run) -> float | None:
    """Seconds since the last successful backup, as Prometheus sees it (None: no metric)."""
    mon = run.stack.manifest.monitoring
    url = f"http://{run.stack.endpoint(mon.prometheus, mon.prometheus_port)}/api/v1/query"
    result = requests.get(url, params={"query": f"time() - {METRIC}"}, timeout=3).json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_no_backup_in_24h_pages_and_the_backup_resolves_it(scenario_run):
    with scenario_run() as run:
        rc, out = run.stack.run_tool("backup/daily-backup.sh")
        assert rc == 0, out
        run.wait_until("Prometheus sees a fresh backup",
                       lambda: (age := prometheus_age(run)) is not None and age < 600, timeout_s=30)
        textfile = run.stack.backups_dir / "metrics" / "backup.prom"

        def stop_backups() -> Heal:
            lines = textfile.read_text().splitlines()
            stale = int(time.time()) - STALE_S
            textfile.write_text("\n".join(f"{METRIC} {stale}" if line.startswith(METRIC + " ") else line
                                          for line in lines) + "\n")

            def run_backup() -> None:
                rc, out = run.stack.run_tool("backup/daily-backup.sh")
                assert rc == 0, out
            return run_backup

        def stale_seen() -> tuple[bool, str]:
            deadline = time.monotonic() + 30
            age = None
            while time.monotonic() < deadline:
                age = prometheus_age(run)
                if age is not None and age > 24 * 3600:
                    return True, f"Prometheus: last successful backup {age / 3600:.1f} h ago"
                time.sleep(1)
            return False, f"Prometheus still reads a backup age of {age} s"

        run.expect_alerts("BackupTooOld")
        fault = run.nemesis.custom("backups-stopped", "daily-backup", stop_backups, stale_seen)
        run.wait_for_alert("BackupTooOld", since=fault.time, timeout_s=60)
        run.nemesis.heal(fault)
        run.wait_until("Prometheus sees the new backup",
                       lambda: (age := prometheus_age(run)) is not None and age < 600, timeout_s=30)
    assert_verdict(run.verdict)
