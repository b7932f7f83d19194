#!/bin/bash
# A Citus member as a Swarm task. Swarm gives a task no DNS name of its own
# for its clients to keep (a task's hostname resolves only while it runs), so the
# member finds its own address on the stack's overlay network (the source address
# of its route to the DCS) and advertises it for Patroni's REST API, and for
# PostgreSQL its Toxiproxy link (below; the address itself without Toxiproxy).
# Patroni registers that in pg_dist_node (worker groups). Name and Citus group
# come from the stack file (PATRONI_NAME / PATRONI_CITUS_GROUP, Swarm's
# {{.Task.Slot}} template).
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
# With PGCHAOS_LINKS (the Toxiproxy service's name), the member's PostgreSQL address is
# its own link `pg-<name>` (config/toxiproxy.json: 15200+N for coordinator-N, 15300+N for
# worker-N, each proxying to the task's hostname, which Swarm's DNS answers with the
# address of the slot's running task once it is healthy).
if [ -n "${PGCHAOS_LINKS:-}" ]; then
  slot=${PATRONI_NAME##*-}
  case "$PATRONI_NAME" in
    coordinator-*) postgres="$PGCHAOS_LINKS:$((15200 + slot))" ;;
    worker-*) postgres="$PGCHAOS_LINKS:$((15300 + slot))" ;;
    *) echo "swarm-member: no link for $PATRONI_NAME" >&2; exit 1 ;;
  esac
fi
echo "swarm-member: $PATRONI_NAME (Citus group $PATRONI_CITUS_GROUP) advertises $postgres (REST $address:8008)"
export PATRONI_POSTGRESQL_CONNECT_ADDRESS="$postgres" PATRONI_RESTAPI_CONNECT_ADDRESS="$address:8008"
exec /usr/local/bin/pgchaos-entrypoint coordinator
