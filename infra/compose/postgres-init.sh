#!/usr/bin/env bash
# Two roles and one database per service: the owner `omnisaga_<service>`
# (the service migrates as it, DATABASE_MIGRATION_URL) and the runtime role
# `omnisaga_<service>_runtime` (the service runs as it, DATABASE_URL; it
# owns nothing and gets the rows of the tables from the owner after every
# migration). Each database is closed to every other role. Analysts log in
# as omnisaga_analyst: it may connect to the analytics database only, and
# the analytics service grants it read access to the star schema.
# The passwords were made on first start by the secrets service
# (secrets-init.sh) in this container's own volume; none is in the
# environment or in a committed file.
set -euo pipefail
secrets=/run/secrets/omnisaga
for svc in order payment warehouse notification analytics; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -v password="$(cat "$secrets/$svc")" \
    -v runtime_password="$(cat "$secrets/${svc}_runtime")" <<SQL
CREATE ROLE omnisaga_${svc} LOGIN PASSWORD :'password';
CREATE ROLE omnisaga_${svc}_runtime LOGIN PASSWORD :'runtime_password';
CREATE DATABASE omnisaga_${svc} OWNER omnisaga_${svc};
REVOKE ALL ON DATABASE omnisaga_${svc} FROM PUBLIC;
GRANT CONNECT ON DATABASE omnisaga_${svc} TO omnisaga_${svc}_runtime;
SQL
done
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -v password="$(cat "$secrets/analyst")" <<SQL
CREATE ROLE omnisaga_analyst LOGIN PASSWORD :'password';
GRANT CONNECT ON DATABASE omnisaga_analytics TO omnisaga_analyst;
SQL
