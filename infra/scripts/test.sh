#!/usr/bin/env bash
# `make test`: starts one Apache Kafka node for the whole run (the service
# tests and the e2e stacks share it, each under its own topic and group
# prefix, so the JVM starts once; the e2e tests that kill the broker start
# their own), runs every test of the workspace, and stops the broker whatever
# happens.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/install-deps.sh" >/dev/null
bash "$here/ensure-postgres.sh"

# Service tests create one database per test (test_<label>_<UUIDv7>), e2e
# stacks one per service (e2e_<16 hex>_<service>), the first 12 hex digits of
# either the creation time in milliseconds; forget earlier runs' databases,
# those created over half an hour ago: a run going on in another clone on
# this machine keeps its own. (A directory's mtime is no age: PostgreSQL
# rewrites files in it whenever it reconnects.) Names of an older scheme,
# without the time, go too.
drop_test_databases() {
  psql -h 127.0.0.1 -U postgres -d postgres -Atqc "
    WITH t AS (
      SELECT datname, CASE
          WHEN datname ~ '^test_.*_[0-9a-f]{12}7[0-9a-f]{19}$' THEN left(right(datname, 32), 12)
          WHEN datname ~ '^e2e_[0-9a-f]{12}7[0-9a-f]{3}_' THEN substr(datname, 5, 12)
        END AS created_hex
      FROM pg_database WHERE datname LIKE 'test\\_%' OR datname LIKE 'e2e\\_%')
    SELECT datname FROM t
    WHERE created_hex IS NULL
       OR to_timestamp(('x' || lpad(created_hex, 16, '0'))::bit(64)::bigint / 1000.0) < now() - interval '30 minutes'" 2>/dev/null |
    while read -r db; do psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true; done
}
drop_test_databases

work="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)"
controller_port="$(free_port)"
bash "$here/../kafka/broker.sh" "$work/broker" "$port" "$controller_port" >"$work/broker.log" 2>&1 &
broker=$!
cleanup() { kill "$broker" 2>/dev/null || true; wait "$broker" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 900); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$broker" 2>/dev/null || { echo "the Kafka broker failed to start:"; tail -n 30 "$work/broker.log"; exit 1; }
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "the Kafka broker did not listen within 90 s:"; tail -n 30 "$work/broker.log"; exit 1; }
echo "[test] Apache Kafka on 127.0.0.1:$port (log: $work/broker.log while the run lasts)"
export OMNISAGA_TEST_KAFKA="127.0.0.1:$port"
# Its controller listener, which tests check refuses a client that did not log in.
export OMNISAGA_TEST_KAFKA_CONTROLLER="127.0.0.1:$controller_port"
# The broker has SASL users and ACLs; tests log in as its admin, and each e2e
# stack provisions users of its own for its services (`omnisaga kafka provision`).
export OMNISAGA_TEST_KAFKA_USERNAME=admin
export OMNISAGA_TEST_KAFKA_PASSWORD_FILE="$work/broker/admin.password"
# Every package, unless the arguments name some (`-p omnisaga-payment --test
# api`): cargo lets `--workspace` win over `-p`, which would run every
# package's binary of that name.
scope=(--workspace)
for arg in "$@"; do
  case "$arg" in -p | -p* | --package | --package=*) scope=() ;; esac
done
# The checks of infra/ (promtool, kubeconform, ...) run beside the tests
# of the whole workspace; a run of some packages leaves them out.
infra=""
if [ "${#scope[@]}" -gt 0 ]; then
  bash "$here/check-infra.sh" >"$work/infra.log" 2>&1 &
  infra=$!
fi
set +e
if [ "$#" -eq 0 ]; then
  # The whole suite: several test binaries at once.
  bash "$here/run-tests.sh" "$work/test.out"
  status=$?
else
  cargo test "${scope[@]}" --no-fail-fast "$@" 2>&1 | tee "$work/test.out"
  status=${PIPESTATUS[0]}
fi
if [ -n "$infra" ]; then
  wait "$infra"
  infra_status=$?
  cat "$work/infra.log"
  if [ "$infra_status" -ne 0 ]; then
    echo "[test] the checks of infra/ failed"
    status=1
  fi
fi
set -e
if [ "$status" -ne 0 ]; then
  echo "[test] the shared broker's last log lines:"
  tail -n 20 "$work/broker.log"
fi
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, i }' "$work/test.out"
exit "$status"
