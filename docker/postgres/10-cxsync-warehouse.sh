#!/usr/bin/env bash
# Runs once, when the postgres data volume is new (docker-entrypoint-initdb.d): creates the cxsync
# warehouse database and its owner next to Airflow's metadata database. Re-running it is harmless.
set -euo pipefail

: "${CXSYNC_WAREHOUSE_DB:=cxsync}"
: "${CXSYNC_WAREHOUSE_USER:=cxsync}"
: "${CXSYNC_WAREHOUSE_PASSWORD:?set CXSYNC_WAREHOUSE_PASSWORD for the warehouse owner}"

# psql variables (:'name') quote the values, so names and passwords need no escaping here.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
  --set=db="$CXSYNC_WAREHOUSE_DB" --set=owner="$CXSYNC_WAREHOUSE_USER" --set=pw="$CXSYNC_WAREHOUSE_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'owner', :'pw')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
echo "cxsync warehouse database '$CXSYNC_WAREHOUSE_DB' owned by '$CXSYNC_WAREHOUSE_USER' is ready"
