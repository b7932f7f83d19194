#!/bin/bash
# The guide's weekly backup verification: checksums, gzip integrity, and a
# test restore into a scratch database (local mode) whose row counts are printed.
set -euo pipefail
BACKUP_FILE=${1:?usage: verify-backup.sh BACKUP_FILE}
here=$(cd "$(dirname "$0")" && pwd)
(cd "$(dirname "$BACKUP_FILE")" && md5sum -c "$(basename "${BACKUP_FILE%.sql.gz}.md5")")
gunzip -t "$BACKUP_FILE"
scratch="verify_$(date -u +%s)"
bash "$here/restore.sh" --yes --local "$BACKUP_FILE" "$scratch" >/dev/null
psql -d "$scratch" -XtA -F ' ' -c "SELECT 'users', count(*) FROM users UNION ALL
  SELECT 'events', count(*) FROM events UNION ALL SELECT 'vectors', count(*) FROM vectors"
psql -d postgres -Xq -c "DROP DATABASE \"$scratch\" WITH (FORCE)"
echo "✅ Backup verified: $BACKUP_FILE"
