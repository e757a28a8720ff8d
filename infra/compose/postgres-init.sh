#!/usr/bin/env bash
# One role and one database per service; each database closed to other roles.
# Analysts log in as omnisaga_analyst: it may connect to the analytics database
# only, and the analytics service grants it read access to the star schema.
# The passwords were made on first start by the secrets service
# (secrets-init.sh) in this container's own volume; none is in the
# environment or in a committed file.
set -euo pipefail
secrets=/run/secrets/omnisaga
for svc in order payment warehouse notification analytics; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -v password="$(cat "$secrets/$svc")" <<SQL
CREATE ROLE omnisaga_${svc} LOGIN PASSWORD :'password';
CREATE DATABASE omnisaga_${svc} OWNER omnisaga_${svc};
REVOKE ALL ON DATABASE omnisaga_${svc} FROM PUBLIC;
SQL
done
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -v password="$(cat "$secrets/analyst")" <<SQL
CREATE ROLE omnisaga_analyst LOGIN PASSWORD :'password';
GRANT CONNECT ON DATABASE omnisaga_analytics TO omnisaga_analyst;
SQL
