#!/bin/bash
# Patroni post_bootstrap: runs once, on the first leader, as postgres.
# Creates the application role and database, then the distributed schema.
set -euo pipefail
psql -v ON_ERROR_STOP=1 -q -d postgres \
  -v user="$APP_USER" -v password="$APP_PASSWORD" -v db="$APP_DB" <<'SQL'
CREATE ROLE :"user" LOGIN SUPERUSER PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"user";
SQL
psql -v ON_ERROR_STOP=1 -q -d "$APP_DB" \
  -v user="$APP_USER" -v password="$APP_PASSWORD" -v db="$APP_DB" \
  -f /etc/pgchaos/coordinator-schema.sql
