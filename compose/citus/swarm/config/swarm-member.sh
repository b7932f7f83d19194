#!/bin/bash
# A Citus member as a Swarm task. Swarm gives a task no DNS name of its own
# (only `tasks.<service>`), so the member finds its own address on the stack's
# overlay network (the source address of its route to the DCS) and advertises
# it for Patroni's REST API, and for PostgreSQL its Toxiproxy link pointed at that
# address (below; the address itself without Toxiproxy). Patroni registers that in
# pg_dist_node (worker groups). Name and Citus group come from the stack file
# (PATRONI_NAME / PATRONI_CITUS_GROUP, Swarm's {{.Task.Slot}} template).
set -euo pipefail
dcs=${PGCHAOS_DCS_HOST:-etcd}
peer=""
for _ in $(seq 1 120); do
  peer=$(getent ahostsv4 "$dcs" | awk 'NR == 1 {print $1}') && [ -n "$peer" ] && break
  sleep 1
done
[ -n "$peer" ] || { echo "swarm-member: $dcs does not resolve after 120 s" >&2; exit 1; }
address=$(ip -4 route get "$peer" | sed -n 's/.* src \([0-9.]*\).*/\1/p')
[ -n "$address" ] || { echo "swarm-member: no route to $dcs ($peer)" >&2; exit 1; }
postgres="$address:5432"
# With PGCHAOS_TOXIPROXY (host:port of its API), the member's PostgreSQL address is its
# own Toxiproxy link `pg-<name>` (listening on 15200+N for coordinator-N, 15300+N for
# worker-N), created here or pointed at this task's address when an earlier task of the
# slot made it. Only the upstream changes: a link cut or slowed by a fault stays so.
if [ -n "${PGCHAOS_TOXIPROXY:-}" ]; then
  slot=${PATRONI_NAME##*-}
  case "$PATRONI_NAME" in
    coordinator-*) port=$((15200 + slot)) ;;
    worker-*) port=$((15300 + slot)) ;;
    *) echo "swarm-member: no link port for $PATRONI_NAME" >&2; exit 1 ;;
  esac
  api="http://$PGCHAOS_TOXIPROXY/proxies"
  link="pg-$PATRONI_NAME"
  code=""
  for _ in $(seq 1 60); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST "$api" \
      -d "{\"name\": \"$link\", \"listen\": \"0.0.0.0:$port\", \"upstream\": \"$postgres\", \"enabled\": true}") || true
    if [ "$code" = 409 ]; then
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST "$api/$link" \
        -d "{\"upstream\": \"$postgres\"}") || true
    fi
    case "$code" in 200|201) break ;; esac
    sleep 1
  done
  case "$code" in 200|201) ;; *) echo "swarm-member: Toxiproxy at $PGCHAOS_TOXIPROXY did not take link $link (HTTP $code) after 60 tries" >&2; exit 1 ;; esac
  postgres="${PGCHAOS_TOXIPROXY%%:*}:$port"
fi
echo "swarm-member: $PATRONI_NAME (Citus group $PATRONI_CITUS_GROUP) advertises $postgres (REST $address:8008)"
export PATRONI_POSTGRESQL_CONNECT_ADDRESS="$postgres" PATRONI_RESTAPI_CONNECT_ADDRESS="$address:8008"
exec /usr/local/bin/pgchaos-entrypoint coordinator
