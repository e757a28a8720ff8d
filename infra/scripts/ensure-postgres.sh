#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 for omnisaga:
# installs Debian's `postgresql` when it is missing, creates a cluster when
# there is none, gives it omnisaga's settings (infra/postgres/omnisaga.conf:
# loopback only, enough connections for the tests, pg_stat_statements, TLS
# with the machine's self-signed certificate; fsync stays on) and lets the
# `postgres` user and the services' roles in over loopback without a
# password, then starts it. Idempotent: a server that already answers with
# these settings is left alone. The stack creates each
# service's database and role (e2e/src/lib.rs).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
log() { printf '[postgres] %s\n' "$*" >&2; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if ! command -v pg_lsclusters >/dev/null 2>&1 || ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
  log "installing Debian's postgresql"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql postgresql-contrib >/dev/null
fi

# The server's TLS certificate (infra/postgres/omnisaga.conf): Debian's
# self-signed one, readable by the server through the ssl-cert group.
if [ ! -f /etc/ssl/private/ssl-cert-snakeoil.key ]; then
  log "installing Debian's ssl-cert for the server's TLS certificate"
  command -v make-ssl-cert >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ssl-cert >/dev/null
  $SUDO make-ssl-cert generate-default-snakeoil
fi
if id postgres >/dev/null 2>&1 && ! id -nG postgres | grep -qw ssl-cert; then
  $SUDO usermod -a -G ssl-cert postgres
fi

version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
cluster="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $3 == 5432 { print $2; exit }')"
if [ -z "$cluster" ]; then
  if pg_isready -q -h 127.0.0.1 -p 5432; then
    log "a server not managed by pg_ctlcluster answers on 5432: using it as it is"
    exit 0
  fi
  log "creating the PostgreSQL $version cluster 'main' on port 5432"
  $SUDO pg_createcluster "$version" main --port 5432 >/dev/null
  cluster=main
fi
etc="/etc/postgresql/$version/$cluster"

changed=0
conf="$etc/conf.d/omnisaga.conf"
if ! cmp -s "$root/infra/postgres/omnisaga.conf" "$conf"; then
  $SUDO mkdir -p "$etc/conf.d"
  $SUDO cp "$root/infra/postgres/omnisaga.conf" "$conf"
  changed=1
fi
# Loopback connections without a password, for the development machine only:
# the rules go above Debian's scram-sha-256 lines, which would match first.
hba="$etc/pg_hba.conf"
if ! grep -q '^# omnisaga: loopback' "$hba"; then
  rules='# omnisaga: loopback connections need no password on this development machine (infra/scripts/ensure-postgres.sh)\nhost    all             all             127.0.0.1/32            trust\nhost    all             all             ::1/128                 trust\n'
  $SUDO sed -i "0,/^host/s||${rules}host|" "$hba"
  changed=1
fi

status="$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c { print $4 }')"
if [ "$status" = online ] && [ "$changed" = 1 ]; then
  log "restarting cluster $version/$cluster with omnisaga's settings"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" restart -- -t 600
elif [ "$status" != online ]; then
  # After an unclean stop the server syncs its data directory before it
  # answers, which takes minutes with many test databases: wait that long.
  log "starting cluster $version/$cluster on 127.0.0.1:5432 (after an unclean stop, recovery may take minutes)"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start -- -t 600
fi
for _ in $(seq 1 100); do
  pg_isready -q -h 127.0.0.1 -p 5432 && exit 0
  sleep 0.1
done
log "still not answering on 127.0.0.1:5432; its log: /var/log/postgresql/postgresql-$version-$cluster.log"
exit 1
