#!/bin/bash
# The guide's restore (Restore Procedures) on the Citus profile, as written:
# drop and recreate the database, load the backup, rebuild the Citus
# metadata with citus_add_node of the workers; non-interactive (the guide's
# confirmation is the caller's --yes). Every step is run and its outcome
# reported, failures included ("STEP n: FAILED: ..."): the guide's script
# has no `set -e`. Usage: restore.sh --yes BACKUP_FILE [TARGET_DB]
set -uo pipefail
[ "${1:-}" = "--yes" ] || { echo "restore.sh: pass --yes (the guide asks on a terminal)" >&2; exit 2; }
BACKUP_FILE=${2:?usage: restore.sh --yes BACKUP_FILE [TARGET_DB]}
TARGET_DB=${3:-distributed_postgres_cluster}
echo "=== Restoring from $BACKUP_FILE to $TARGET_DB ==="
step() {  # step N LABEL -- command...
  local n=$1 label=$2; shift 3
  if out=$("$@" 2>&1); then echo "STEP $n $label: ok"; else echo "STEP $n $label: FAILED: $(echo "$out" | grep -m1 -iE 'error|fatal' || echo "$out" | tail -1)"; fi
}
step 2 "DROP DATABASE" -- psql -d postgres -X -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $TARGET_DB;"
step 2 "CREATE DATABASE" -- psql -d postgres -X -v ON_ERROR_STOP=1 -c "CREATE DATABASE $TARGET_DB;"
errors=$(gunzip -c "$BACKUP_FILE" | psql -X -q -d "$TARGET_DB" 2>&1 >/dev/null | grep -c ERROR)
echo "STEP 3 load the backup: done with $errors ERROR lines"
step 5 "citus_add_node x4" -- psql -d "$TARGET_DB" -X -v ON_ERROR_STOP=1 -c "
    SELECT citus_add_node('worker-1', 5432);
    SELECT citus_add_node('worker-2', 5432);
    SELECT citus_add_node('worker-3', 5432);
    SELECT citus_add_node('worker-4', 5432);"
echo "✅ Restore complete"
