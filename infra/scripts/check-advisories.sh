#!/usr/bin/env bash
# `make lint`: cargo-deny's advisories check (deny.toml), against the RustSec
# advisory database, which cargo-deny clones from GitHub into
# $CARGO_HOME/advisory-dbs. Where GitHub is reachable, CARGO_DENY_ADVISORIES=1
# fetches the database and checks (and fails when it cannot fetch). Without
# it, a database fetched before is used as it is, offline, and its age said;
# with none, the check says it did not run and how to run it: it never passes
# silently.
set -euo pipefail
dbs="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
if [ "${CARGO_DENY_ADVISORIES:-0}" = 1 ]; then
  exec cargo deny check advisories
fi
db="$(find "$dbs" -mindepth 2 -maxdepth 2 -name crates -type d 2>/dev/null | head -n 1 || true)"
if [ -z "$db" ]; then
  echo "[lint] advisories NOT checked: no RustSec advisory database in $dbs." >&2
  echo "[lint] Where GitHub is reachable: CARGO_DENY_ADVISORIES=1 make lint (fetches it, then checks)." >&2
  exit 0
fi
as_of="$(git -C "$(dirname "$db")" log -1 --format=%cs 2>/dev/null || echo "of unknown date")"
echo "[lint] advisories: against the RustSec database as of $as_of, offline (CARGO_DENY_ADVISORIES=1 fetches it anew)" >&2
cargo deny --offline check advisories
