#!/bin/bash
# The guide's morning health check, adapted to this stack (compose instead of
# swarm, Patroni's coordinator group, PgBouncer on 127.0.0.1). The same checks,
# with thresholds, are what `pgchaos status` runs as the steady state.
#   Usage: daily-health-check.sh [COMPOSE_PROJECT]   (default: the newest pgchaos run)
set -uo pipefail
project=${1:-$(docker ps --filter label=io.pgchaos.owner=pgchaos --format '{{.Label "com.docker.compose.project"}}' | sort -u | tail -1)}
[ -n "$project" ] || { echo "daily-health-check: no pgchaos stack is running" >&2; exit 2; }
PGPORT=${PGCHAOS_PGBOUNCER_PORT:-6432}
export PGPASSWORD=${PGPASSWORD:-dpg_cluster_pw}
psql_app() { psql -X -h 127.0.0.1 -p "$PGPORT" -U dpg_cluster -d distributed_postgres_cluster "$@"; }
container() { docker ps -q --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=$1"; }

echo "=== Daily Health Check - $(date) ($project) ==="
echo "1. Checking services..."
down=$(docker ps -a --filter "label=com.docker.compose.project=$project" --format '{{.Label "com.docker.compose.service"}} {{.Status}}' | grep -v -E 'Up .*(healthy\)|[0-9] (seconds|minutes|hours|days))$' || true)
if [ -n "$down" ]; then echo "⚠️  WARNING: Some services are not up/healthy:"; echo "$down"; else echo "✅ All services healthy"; fi

echo -e "\n2. Checking Patroni HA cluster..."
for c in coordinator-1 coordinator-2 coordinator-3; do
  id=$(container "$c"); [ -n "$id" ] || continue
  docker exec -u postgres "$id" patronictl -c /etc/patroni/patroni.yml list && break
done

echo -e "\n3. Checking replication lag..."
leader_port=$(for c in coordinator-1 coordinator-2 coordinator-3; do
  id=$(container "$c"); [ -n "$id" ] || continue
  if docker exec "$id" curl -fs -o /dev/null localhost:8008/primary; then docker port "$id" 5432 | head -1 | cut -d: -f2; fi
done | head -1)
psql -X -h 127.0.0.1 -p "${leader_port:-5000}" -U dpg_cluster -d distributed_postgres_cluster -c "
    SELECT application_name, client_addr, state,
        pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) AS lag_bytes,
        CASE WHEN pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) > 104857600 THEN '❌ ACTION (>100MB)'
             WHEN pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) > 10485760 THEN '⚠️  HIGH LAG'
             ELSE '✅ Normal' END AS status
    FROM pg_stat_replication;"

echo -e "\n4. Checking connection pool..."
psql -X -h 127.0.0.1 -p "$PGPORT" -U dpg_cluster pgbouncer -c "SHOW POOLS" -c "SHOW DATABASES"

echo -e "\n5. Checking disk space..."
for c in coordinator-1 coordinator-2 coordinator-3 worker-1 worker-2; do
  id=$(container "$c"); [ -n "$id" ] || continue
  echo "$c: $(docker exec "$id" df -h /var/lib/pgchaos | tail -1)"
done

echo -e "\n6. Checking for slow queries (>1s)..."
psql_app -c "SELECT pid, now() - query_start AS duration, query, state FROM pg_stat_activity
    WHERE (now() - query_start) > interval '1 second' AND state = 'active' ORDER BY duration DESC;"

echo -e "\n7. Checking for dead connections..."
psql_app -c "SELECT count(*) AS dead_connections FROM pg_stat_activity
    WHERE state = 'idle in transaction' AND now() - state_change > interval '10 minutes';"
echo -e "\n=== Health Check Complete ==="
