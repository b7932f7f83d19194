#!/bin/bash
# The guide's restore, non-interactive with --yes (without it, it asks on a
# terminal and refuses without one). Usage:
#   restore.sh [--yes] [--local] BACKUP_FILE [TARGET_DB]
# --local: for the DR test — the distributed tables are restored as plain local
# tables of TARGET_DB (their rows come from the backup), so a test restore
# never writes to the workers that serve the live database.
# Without --local, the distributed tables (the guide's and the load's own
# pgchaos.events) are emptied first (TRUNCATE reaches the workers through
# postgres_fdw), the database is dropped and recreated,
# and the rows flow back to the workers.
set -euo pipefail
yes=0; local_mode=0
while [ $# -gt 0 ]; do
  case "$1" in
    --yes) yes=1; shift ;;
    --local) local_mode=1; shift ;;
    -*) echo "restore.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
BACKUP_FILE=${1:-}
TARGET_DB=${2:-distributed_postgres_cluster}
if [ -z "$BACKUP_FILE" ]; then
  echo "Usage: $0 [--yes] [--local] <backup_file> [target_database]" >&2
  exit 2
fi
[ -f "$BACKUP_FILE" ] || { echo "restore.sh: no such backup: $BACKUP_FILE" >&2; exit 2; }
echo "=== Restoring from $BACKUP_FILE to $TARGET_DB ==="
if [ "$yes" -ne 1 ]; then
  echo "⚠️  WARNING: Stop application traffic before proceeding"
  if [ ! -t 0 ]; then echo "restore.sh: no terminal to confirm on; pass --yes" >&2; exit 2; fi
  read -r -p "Continue? (yes/no): " confirm
  [ "$confirm" = "yes" ] || { echo "Restore cancelled"; exit 0; }
fi
sums="${BACKUP_FILE%.sql.gz}.md5"
if [ -f "$sums" ]; then (cd "$(dirname "$BACKUP_FILE")" && md5sum --quiet -c "$(basename "$sums")"); fi

exists=$(psql -d postgres -XtAc "SELECT 1 FROM pg_database WHERE datname = '$TARGET_DB'")
if [ "$exists" = "1" ] && [ "$local_mode" -eq 0 ]; then
  psql -d "$TARGET_DB" -X -q -c "DO \$\$ BEGIN
      IF to_regclass('public.users') IS NOT NULL THEN TRUNCATE users, events, vectors; END IF;
      IF to_regclass('pgchaos.events') IS NOT NULL THEN TRUNCATE pgchaos.events; END IF;
    END \$\$;"
fi
psql -d postgres -X -q -v ON_ERROR_STOP=1 \
  -c "DROP DATABASE IF EXISTS \"$TARGET_DB\" WITH (FORCE)" -c "CREATE DATABASE \"$TARGET_DB\""

as_local() {
  # CREATE FOREIGN TABLE ... SERVER ... OPTIONS (...);  ->  CREATE TABLE ... ;
  awk '
    /^CREATE FOREIGN TABLE / { sub(/^CREATE FOREIGN TABLE /, "CREATE TABLE "); inft = 1; print; next }
    inft && /^\)$/ { print ");"; inft = 0; skip = 1; next }
    skip { if ($0 ~ /;$/) skip = 0; next }
    /^ALTER FOREIGN TABLE / { sub(/^ALTER FOREIGN TABLE /, "ALTER TABLE ") }
    { print }'
}
if [ "$local_mode" -eq 1 ]; then
  gunzip -c "$BACKUP_FILE" | as_local | psql -X -q -v ON_ERROR_STOP=1 -d "$TARGET_DB" >/dev/null
else
  gunzip -c "$BACKUP_FILE" | psql -X -q -v ON_ERROR_STOP=1 -d "$TARGET_DB" >/dev/null
fi
psql -d "$TARGET_DB" -X <<SQL
SELECT count(*) AS table_count FROM information_schema.tables WHERE table_schema = 'public';
SELECT pg_size_pretty(pg_database_size('$TARGET_DB')) AS database_size;
SQL
echo "✅ Restore complete"
