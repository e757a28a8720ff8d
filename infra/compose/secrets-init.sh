#!/bin/sh
# Runs once before anything else in the compose deployment (the `secrets`
# service): makes every secret on first start and hands each container
# only its own, one volume each. Nothing here is committed or fixed: a
# fresh deployment gets fresh passwords, and a second start keeps them.
#   /secrets/admin      the token signing key, the analysts' logins (operators only)
#   /secrets/postgres   the superuser's and every service role's password
#   /secrets/<service>  its DATABASE_URL and DATABASE_MIGRATION_URL, the JWKS, its service token
#   /secrets/grafana    Grafana's admin password
# Kafka's admin password is made by the broker itself (broker.sh) in its own
# data volume; `kafka-provision` hands each service its Kafka password.
set -eu
umask 077
cli=/usr/local/bin/service

secret() { # FILE: a random password, made once
  [ -s "$1" ] || head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$1"
}

mkdir -p /secrets/admin /secrets/postgres /secrets/grafana
"$cli" token keygen --dir /secrets/admin/auth >/dev/null
secret /secrets/postgres/superuser
secret /secrets/grafana/admin-password
for svc in order payment warehouse notification analytics; do
  mkdir -p "/secrets/$svc"
  secret "/secrets/postgres/$svc"
  secret "/secrets/postgres/${svc}_runtime"
  # The service runs as the runtime role, which owns nothing, and migrates
  # as the owner (docs/security.md, Database roles).
  printf 'postgres://omnisaga_%s_runtime:%s@postgres:5432/omnisaga_%s' "$svc" "$(cat "/secrets/postgres/${svc}_runtime")" "$svc" \
    >"/secrets/$svc/database-url"
  printf 'postgres://omnisaga_%s:%s@postgres:5432/omnisaga_%s' "$svc" "$(cat "/secrets/postgres/$svc")" "$svc" \
    >"/secrets/$svc/migration-url"
  cp /secrets/admin/auth/jwks.json "/secrets/$svc/jwks.json"
done
secret /secrets/postgres/analyst
cp /secrets/postgres/analyst /secrets/admin/analyst-db-password

# The two calls between services, each with the one scope it needs, for a year
# (run the secrets service again before then: it mints anew when one is older).
mint() { # SERVICE FILE SUB SCOPE
  if [ ! -s "$2" ] || [ -n "$(find "$2" -mtime +300)" ]; then
    "$cli" token mint --key-dir /secrets/admin/auth --sub "$3" --scope "$4" --ttl 31536000 >"$2"
  fi
}
mint order /secrets/order/warehouse-token order-service stock:read
mint payment /secrets/payment/order-token payment-service payment-methods:read

# Each container reads its own as its own user: the services run as 10001,
# PostgreSQL as 999, Grafana as 472.
chown -R 10001:10001 /secrets/order /secrets/payment /secrets/warehouse /secrets/notification /secrets/analytics /secrets/admin
chown -R 999:999 /secrets/postgres
chown -R 472:0 /secrets/grafana
echo "[secrets] ready"
