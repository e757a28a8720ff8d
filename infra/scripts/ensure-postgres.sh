#!/usr/bin/env bash
# Makes sure the local PostgreSQL answers on 127.0.0.1:5432, starting the
# machine's cluster if it is down. The stack creates its databases and roles.
set -euo pipefail
if pg_isready -q -h 127.0.0.1 -p 5432; then exit 0; fi
echo "[postgres] not answering on 127.0.0.1:5432, starting the local cluster" >&2
version=$(ls /etc/postgresql | sort -V | tail -n 1)
pg_ctlcluster --skip-systemctl-redirect "$version" main start
for _ in $(seq 1 100); do
  pg_isready -q -h 127.0.0.1 -p 5432 && exit 0
  sleep 0.1
done
echo "[postgres] still not answering on 127.0.0.1:5432" >&2
exit 1
