#!/usr/bin/env bash
# One role and one database per service; each database closed to other roles.
set -euo pipefail
for svc in order payment warehouse notification analytics; do
  var="$(echo "${svc}" | tr a-z A-Z)_DB_PASSWORD"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<SQL
CREATE ROLE omnisaga_${svc} LOGIN PASSWORD '${!var}';
CREATE DATABASE omnisaga_${svc} OWNER omnisaga_${svc};
REVOKE ALL ON DATABASE omnisaga_${svc} FROM PUBLIC;
SQL
done
