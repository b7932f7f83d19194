#!/bin/bash
set -euo pipefail
psql -v ON_ERROR_STOP=1 -q -d postgres -v user="$SHOP_USER" -v password="$SHOP_PASSWORD" <<'SQL'
CREATE ROLE :"user" LOGIN CREATEDB PASSWORD :'password';
CREATE DATABASE shop OWNER :"user";
SQL
