#!/bin/bash
# The guide's daily backup, adapted to this stack. Runs in the toolbox
# container (PostgreSQL 17 client) on the stack network, against the leader
# through HAProxy (pg_dumpall needs every database, which PgBouncer does not
# route). Writes, in $BACKUP_DIR:
#   backup_<ts>.sql.gz    pg_dump of the application database, including the
#                         workers' rows (--include-foreign-data), restorable
#                         into any database (the guide's pg_dumpall output
#                         reconnects to the original database on restore)
#   globals_<ts>.sql.gz   pg_dumpall --globals-only (roles)
#   metadata_<ts>.sql.gz  the distribution metadata (the Citus metadata export's
#                         counterpart: foreign servers and partition layout)
#   backup_<ts>.md5       checksums of the three
set -euo pipefail
BACKUP_DIR=${BACKUP_DIR:-/backups}
DB=${PGDATABASE:-distributed_postgres_cluster}
RETENTION_DAYS=${RETENTION_DAYS:-30}
TIMESTAMP=$(date -u +%Y%m%d_%H%M%S)
echo "=== Starting backup - $(date -u) ==="
mkdir -p "$BACKUP_DIR"
cd "$BACKUP_DIR"
pg_dump -d "$DB" --include-foreign-data='worker_*' | gzip >"backup_${TIMESTAMP}.sql.gz"
pg_dumpall --globals-only | gzip >"globals_${TIMESTAMP}.sql.gz"
psql -d "$DB" -X -v ON_ERROR_STOP=1 <<'SQL' | gzip >"metadata_${TIMESTAMP}.sql.gz"
SELECT srvname, srvoptions FROM pg_foreign_server ORDER BY 1;
SELECT inhparent::regclass AS distributed_table, inhrelid::regclass AS shard,
       pg_get_expr(c.relpartbound, c.oid) AS bounds, fs.srvname AS worker
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
LEFT JOIN pg_foreign_table ft ON ft.ftrelid = c.oid LEFT JOIN pg_foreign_server fs ON fs.oid = ft.ftserver
ORDER BY 1, 2;
SQL
md5sum "backup_${TIMESTAMP}.sql.gz" "globals_${TIMESTAMP}.sql.gz" "metadata_${TIMESTAMP}.sql.gz" \
  >"backup_${TIMESTAMP}.md5"
if [ -s "backup_${TIMESTAMP}.sql.gz" ]; then
  echo "✅ Backup created: backup_${TIMESTAMP}.sql.gz"
  echo "   Size: $(du -h "backup_${TIMESTAMP}.sql.gz" | cut -f1)"
  "$(dirname "$0")/record-success.sh" "backup_${TIMESTAMP}.sql.gz"  # for the 24 h backup alert
else
  echo "❌ Backup failed!"
  exit 1
fi
find "$BACKUP_DIR" -name 'backup_*.sql.gz' -mtime +"$RETENTION_DAYS" -delete
echo "✅ Cleaned backups older than $RETENTION_DAYS days"
echo "=== Backup complete - $(date -u) ==="
