#!/usr/bin/env bash
# Records a successful backup for the "no successful backup in 24 h" alert:
# a Prometheus textfile ($METRICS_DIR/backup.prom, read by node exporter's
# textfile collector), written atomically. Usage: record-success.sh BACKUP_FILE
set -euo pipefail
file=$1
METRICS_DIR=${METRICS_DIR:-${BACKUP_DIR:-/backups}/metrics}
mkdir -p "$METRICS_DIR"
tmp="$METRICS_DIR/.backup.prom.$$"
cat >"$tmp" <<METRICS
# HELP pgchaos_backup_last_success_timestamp_seconds When the daily backup last succeeded.
# TYPE pgchaos_backup_last_success_timestamp_seconds gauge
pgchaos_backup_last_success_timestamp_seconds $(date -u +%s)
# HELP pgchaos_backup_last_size_bytes Size of the last successful backup.
# TYPE pgchaos_backup_last_size_bytes gauge
pgchaos_backup_last_size_bytes $(stat -c %s "$file")
METRICS
chmod 644 "$tmp"
mv "$tmp" "$METRICS_DIR/backup.prom"
