#!/bin/bash
# A Citus member as a Swarm task. Swarm gives a task no DNS name of its own
# (only `tasks.<service>`), so Patroni advertises the task's own address on the
# stack's overlay network: the source address of its route to the DCS. Patroni
# registers that address in pg_dist_node (worker groups) and updates it when a
# task comes back on a new one. Name and Citus group come from the stack file
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
echo "swarm-member: $PATRONI_NAME (Citus group $PATRONI_CITUS_GROUP) advertises $address"
export PATRONI_POSTGRESQL_CONNECT_ADDRESS="$address:5432" PATRONI_RESTAPI_CONNECT_ADDRESS="$address:8008"
exec /usr/local/bin/pgchaos-entrypoint coordinator
