#!/bin/bash
# Patroni post_bootstrap: runs once per Citus group, on its first leader,
# before Patroni creates the Citus database and extension (it tolerates both
# existing). The application role exists in every group, and every node may
# reach every other as that role: Citus connects to the workers as the
# current user, with the password it finds in pg_dist_authinfo (nodeid 0:
# any node).
set -euo pipefail
psql -v ON_ERROR_STOP=1 -q -d postgres -v user="$APP_USER" -v password="$APP_PASSWORD" -v db="$APP_DB" <<'SQL'
CREATE ROLE :"user" LOGIN SUPERUSER PASSWORD :'password';
CREATE DATABASE :"db";
SQL
psql -v ON_ERROR_STOP=1 -q -d "$APP_DB" -v user="$APP_USER" -v authinfo="password=$APP_PASSWORD" <<'SQL'
CREATE EXTENSION IF NOT EXISTS citus;
INSERT INTO pg_catalog.pg_dist_authinfo VALUES (0, :'user', :'authinfo');
SQL
