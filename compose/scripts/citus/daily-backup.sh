#!/bin/bash
# The guide's daily backup (Backup Procedures, daily-backup.sh) on the Citus
# profile, run in the toolbox container on the stack network. Each step as
# the guide writes it; where one fails, the step that works runs next and
# both are reported ("AS WRITTEN ... FAILED: <error>" / "WORKING: ...").
#   backup_<ts>.tar.gz          pg_dumpall, gzip'd (the guide's name; it is SQL)
#   citus_metadata_<ts>.sql.gz  the guide's metadata export (psql output)
#   citus_distribution_<ts>.csv ours: table, distribution column, method,
#                               colocation id, shard count (what a restore needs to
#                               distribute the tables again)
set -uo pipefail
BACKUP_DIR=${BACKUP_DIR:-/backups}
DB=${PGDATABASE:-distributed_postgres_cluster}
POOLER_HOST=${POOLER_HOST:-pgbouncer}
POOLER_PORT=${POOLER_PORT:-6432}
TS=$(date -u +%Y%m%d_%H%M%S)
mkdir -p "$BACKUP_DIR" && cd "$BACKUP_DIR" || exit 1
echo "=== Starting backup - $(date -u) ==="

# 2. Dump all databases -- as written: through PgBouncer
if pg_dumpall -h "$POOLER_HOST" -p "$POOLER_PORT" 2>/tmp/err | gzip >"backup_${TS}.tar.gz" \
   && [ "${PIPESTATUS[0]}" -eq 0 ]; then
  echo "AS WRITTEN pg_dumpall via PgBouncer: ok"
else
  echo "AS WRITTEN pg_dumpall via PgBouncer: FAILED: $(grep -m1 -i error /tmp/err || tail -1 /tmp/err)"
  # working: pg_dumpall needs every database; PgBouncer routes only the application's -> HAProxy
  pg_dumpall | gzip >"backup_${TS}.tar.gz" || { echo "❌ Backup failed!"; exit 1; }
  echo "WORKING pg_dumpall via HAProxy ($PGHOST:$PGPORT): ok"
fi
# 3. Verify backup
[ -s "backup_${TS}.tar.gz" ] && echo "✅ Backup created: backup_${TS}.tar.gz" || { echo "❌ Backup failed!"; exit 1; }
"$(dirname "$0")/../backup/record-success.sh" "backup_${TS}.tar.gz"  # for the 24 h backup alert
echo "   Size: $(du -h "backup_${TS}.tar.gz" | cut -f1)"

# 4. Backup Citus metadata -- as written (through PgBouncer)
psql -h "$POOLER_HOST" -p "$POOLER_PORT" -d "$DB" -X <<'SQL' 2>/tmp/err | gzip >"citus_metadata_${TS}.sql.gz"
    -- Export Citus metadata
    SELECT * FROM pg_dist_node;
    SELECT * FROM pg_dist_partition;
    SELECT * FROM pg_dist_shard;
    SELECT * FROM pg_dist_placement;
SQL
if [ -s /tmp/err ]; then echo "AS WRITTEN metadata export: FAILED: $(head -1 /tmp/err)"
else echo "AS WRITTEN metadata export: ok (citus_metadata_${TS}.sql.gz)"; fi
# ours: the distribution in a form a restore can replay
psql -d "$DB" -X -v ON_ERROR_STOP=1 --csv -c "
  SELECT logicalrelid::regclass::text AS table_name,
         CASE WHEN partkey IS NULL THEN '' ELSE column_to_column_name(logicalrelid, partkey) END AS column_name,
         partmethod, colocationid,
         (SELECT count(*) FROM pg_dist_shard s WHERE s.logicalrelid = p.logicalrelid) AS shard_count
  FROM pg_dist_partition p ORDER BY colocationid, logicalrelid::regclass::text" >"citus_distribution_${TS}.csv" \
  && echo "ADDED distribution export: citus_distribution_${TS}.csv"
echo "=== Backup complete - $(date -u) ==="
