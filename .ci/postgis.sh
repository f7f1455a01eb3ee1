#!/usr/bin/env bash
# Start a local PostgreSQL 15 cluster with PostGIS for the test suite and print the
# DATABASE_URL to use. Installs postgresql-15-postgis-3 when missing. Safe to re-run.
set -euo pipefail
DB_NAME=${WEIGE_PG_DB:-weige}
DB_USER=${WEIGE_PG_USER:-weige}
DB_PASS=${WEIGE_PG_PASSWORD:-weige}

if ! dpkg -s postgresql-15-postgis-3 >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql-15 postgresql-15-postgis-3 >&2
  # The install may upgrade PostgreSQL itself; a server started before it would then fail
  # to load its own libraries (plpgsql), so restart one that is running.
  if pg_lsclusters -h 2>/dev/null | grep -q '^15 *main .* online'; then
    pg_ctlcluster 15 main restart >&2
  fi
fi
if ! pg_lsclusters -h | grep -q '^15 *main'; then
  pg_createcluster 15 main >&2
fi
pg_ctlcluster 15 main start >&2 2>/dev/null || true
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 1
done
psql_as_postgres() { su postgres -c "psql -v ON_ERROR_STOP=1 -qAt -h /var/run/postgresql $*"; }
if [ "$(psql_as_postgres "-c \"SELECT 1 FROM pg_roles WHERE rolname='${DB_USER}'\"")" != "1" ]; then
  # Superuser: the test runner creates test databases and the postgis extension in them.
  psql_as_postgres "-c \"CREATE ROLE ${DB_USER} LOGIN SUPERUSER PASSWORD '${DB_PASS}'\"" >&2
fi
if [ "$(psql_as_postgres "-c \"SELECT 1 FROM pg_database WHERE datname='${DB_NAME}'\"")" != "1" ]; then
  psql_as_postgres "-c \"CREATE DATABASE ${DB_NAME} OWNER ${DB_USER}\"" >&2
fi
psql_as_postgres "-d ${DB_NAME} -c \"CREATE EXTENSION IF NOT EXISTS postgis\"" >&2
echo "postgis://${DB_USER}:${DB_PASS}@127.0.0.1:5432/${DB_NAME}"
