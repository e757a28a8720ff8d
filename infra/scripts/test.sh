#!/usr/bin/env bash
# `make test`: starts a throwaway broker (in memory) for the service tests,
# runs every test of the workspace (unit, service, e2e: the e2e tests start
# their own stack of processes), and stops the broker whatever happens.
set -euo pipefail
nisshi="$(bash "$(dirname "$0")/install-deps.sh")"
bash "$(dirname "$0")/ensure-postgres.sh"

# Service tests create one database per test (test_*); forget earlier runs'.
drop_test_databases() {
  psql -h 127.0.0.1 -U postgres -d postgres -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'test\\_%'" 2>/dev/null |
    while read -r db; do psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true; done
}
drop_test_databases

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
(cd "$work" && exec "$nisshi" broker --listener-url "tcp://127.0.0.1:$port" \
  --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine memory://nisshi/ \
  --group-initial-rebalance-delay 100ms >"$work/broker.log" 2>&1) &
broker=$!
cleanup() { kill "$broker" 2>/dev/null || true; wait "$broker" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$broker" 2>/dev/null || { echo "broker failed to start:"; cat "$work/broker.log"; exit 1; }
  sleep 0.1
done
echo "[test] broker on 127.0.0.1:$port"
bash "$(dirname "$0")/check-infra.sh"
export OMNISAGA_TEST_KAFKA="127.0.0.1:$port"
export NISSHI_BIN="$nisshi"
set +e
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$work/test.out"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, i }' "$work/test.out"
exit "$status"
