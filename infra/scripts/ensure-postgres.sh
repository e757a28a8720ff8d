#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 for omnisaga:
# installs Debian's `postgresql` when it is missing, creates a cluster when
# there is none, gives it omnisaga's settings (infra/postgres/omnisaga.conf:
# loopback only, enough connections for the tests, pg_stat_statements, TLS
# with the machine's self-signed certificate; fsync stays on), starts it,
# and makes every role log in with a password over the network
# (infra/scripts/pg-passwords.py): `postgres` (the tests' and scripts'
# administrator), each service's owner `omnisaga_<service>` (runs its
# migrations) and runtime role `omnisaga_<service>_runtime` (what the
# service runs as: owns nothing), and `omnisaga_analyst`. Each password is
# generated once and kept in the PostgreSQL password file (PGPASSFILE, else
# ~/.pgpass, readable by its owner only), which libpq, psql and sqlx read
# by themselves; the server keeps only SCRAM verifiers. Loopback
# connections then need the password (scram-sha-256); only the local
# socket keeps peer authentication, for the cluster's superuser account.
# Idempotent and quick when nothing changed: a server that already answers
# with these settings is left alone, and a change of pg_hba.conf is a
# reload, which keeps open connections. The stack creates each service's
# database (tools/stack/src/database.rs).
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
ready=0
for _ in $(seq 1 100); do
  pg_isready -q -h 127.0.0.1 -p 5432 && { ready=1; break; }
  sleep 0.1
done
if [ "$ready" != 1 ]; then
  log "still not answering on 127.0.0.1:5432; its log: /var/log/postgresql/postgresql-$version-$cluster.log"
  exit 1
fi

# Passwords first, then the rules that ask for them: a client reading the
# password file is never refused in between. One clone at a time, so two
# runs never generate two passwords for one role.
as_superuser() {
  (cd / && if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi)
}
exec 9>"${TMPDIR:-/tmp}/omnisaga-ensure-postgres.lock"
flock 9
roles=(postgres omnisaga_analyst)
for svc in order payment warehouse notification analytics; do
  roles+=("omnisaga_$svc" "omnisaga_${svc}_runtime")
done
verifiers="$(as_superuser psql -p 5432 -d postgres -XAtqc "SELECT rolname || ' ' || coalesce(rolpassword, '-') FROM pg_authid")"
sql="$(printf '%s\n' "$verifiers" | python3 "$root/infra/scripts/pg-passwords.py" "${PGPASSFILE:-$HOME/.pgpass}" "${roles[@]}")"
if [ -n "$sql" ]; then
  log "setting the passwords of roles without one (kept in ${PGPASSFILE:-$HOME/.pgpass})"
  printf '%s\n' "$sql" | as_superuser psql -p 5432 -d postgres -XqAt -v ON_ERROR_STOP=1 >/dev/null
fi

# The loopback rules of earlier versions let anyone in without a password:
# remove them, so Debian's scram-sha-256 rules below them decide. The
# marker line stays (saying so): an earlier version of this script, run
# from an older clone, adds its rules only where no line starts with it.
hba="$etc/pg_hba.conf"
trust='^host[[:space:]]+all[[:space:]]+all[[:space:]]+(127\.0\.0\.1/32|::1/128)[[:space:]]+trust[[:space:]]*$'
if grep -Eq "$trust|^# omnisaga: loopback connections need no password" "$hba"; then
  $SUDO sed -i -E -e '/^# omnisaga: loopback connections need no password/d' -e "\\#$trust#d" "$hba"
  hba_changed=1
fi
if ! grep -Eq '^host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+scram-sha-256' "$hba"; then
  printf 'host    all             all             127.0.0.1/32            scram-sha-256\nhost    all             all             ::1/128                 scram-sha-256\n' | $SUDO tee -a "$hba" >/dev/null
  hba_changed=1
fi
if ! grep -q '^# omnisaga: loopback' "$hba"; then
  echo '# omnisaga: loopback connections need a password (scram-sha-256; infra/scripts/ensure-postgres.sh)' | $SUDO tee -a "$hba" >/dev/null
fi
if [ "${hba_changed:-0}" = 1 ]; then
  log "loopback connections now need a password (scram-sha-256): reloading $version/$cluster"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" reload
fi
if grep -Eq '^host.*[[:space:]]trust[[:space:]]*$' "$hba"; then
  log "warning: $hba still lets some network connections in without a password (trust)"
fi
