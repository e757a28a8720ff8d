#!/usr/bin/env bash
# One role and one database per service; each database closed to other roles.
# Analysts log in as omnisaga_analyst: it may connect to the analytics database
# only, and the analytics service grants it read access to the star schema.
set -euo pipefail
for svc in order payment warehouse notification analytics; do
  var="$(echo "${svc}" | tr a-z A-Z)_DB_PASSWORD"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<SQL
CREATE ROLE omnisaga_${svc} LOGIN PASSWORD '${!var}';
CREATE DATABASE omnisaga_${svc} OWNER omnisaga_${svc};
REVOKE ALL ON DATABASE omnisaga_${svc} FROM PUBLIC;
SQL
done
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<SQL
CREATE ROLE omnisaga_analyst LOGIN PASSWORD '${ANALYST_DB_PASSWORD}';
GRANT CONNECT ON DATABASE omnisaga_analytics TO omnisaga_analyst;
SQL
