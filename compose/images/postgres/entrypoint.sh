#!/bin/bash
# Roles: "coordinator" runs Patroni; "worker" runs a plain PostgreSQL node.
set -euo pipefail
ROLE=${1:-coordinator}
DATA_ROOT=/var/lib/pgchaos
mkdir -p "$DATA_ROOT" /var/run/postgresql
chown postgres:postgres "$DATA_ROOT" /var/run/postgresql
chmod 700 "$DATA_ROOT"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

case "$ROLE" in
coordinator)
  exec setpriv --reuid=postgres --regid=postgres --init-groups patroni /etc/patroni/patroni.yml
  ;;
worker)
  PGDATA=$DATA_ROOT/pg
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp); echo "$POSTGRES_PASSWORD" >"$pwfile"; chown postgres "$pwfile"
    as_postgres initdb -D "$PGDATA" -U postgres --pwfile="$pwfile" --auth-host=scram-sha-256 \
      --auth-local=trust --data-checksums -E UTF8 >/dev/null
    rm -f "$pwfile"
    echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
    cat /etc/pgchaos/worker.conf >>"$PGDATA/postgresql.conf"
    as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    as_postgres psql -v ON_ERROR_STOP=1 -q -U postgres -d postgres \
      -v user="$APP_USER" -v password="$APP_PASSWORD" -v db="$APP_DB" -f /etc/pgchaos/worker-init.sql
    as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA"
  ;;
*)
  exec "$@"
  ;;
esac
