#!/bin/bash
# Once per Citus group, on its first leader: the database and extension (Patroni
# tolerates both existing), and the superuser's password for Citus's own
# connections between nodes (pg_dist_authinfo, nodeid 0: any node).
set -euo pipefail
psql -v ON_ERROR_STOP=1 -q -d postgres -c "CREATE DATABASE citus"
psql -v ON_ERROR_STOP=1 -q -d citus -v authinfo="password=$PATRONI_SUPERUSER_PASSWORD" <<'SQL'
CREATE EXTENSION IF NOT EXISTS citus;
INSERT INTO pg_catalog.pg_dist_authinfo VALUES (0, 'postgres', :'authinfo');
SQL
