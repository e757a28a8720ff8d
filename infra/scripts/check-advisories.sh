#!/usr/bin/env bash
# `make lint`: cargo-deny's advisories check (deny.toml), against the RustSec
# advisory database, which cargo-deny clones from GitHub into
# $CARGO_HOME/advisory-dbs. CARGO_DENY_ADVISORIES says how:
#   1      fetch the database anew, then check (fails when it cannot fetch);
#   unset  check against a database fetched before, offline, saying its age;
#          with none there, FAIL: the advisories could not be checked;
#   skip   do not check, and say so loudly: for a machine that cannot reach
#          GitHub (this repository's CI, .ci/run), an explicit choice.
# The check never passes without having checked anything.
set -euo pipefail
dbs="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
how="${CARGO_DENY_ADVISORIES:-}"
case "$how" in
  1)
    echo "[lint] advisories: fetching the RustSec database into $dbs, then checking" >&2
    if ! cargo deny check advisories; then
      echo "[lint] advisories FAILED: an advisory above, or the database could not be fetched (is GitHub reachable?)" >&2
      exit 1
    fi
    exit 0
    ;;
  skip)
    echo "[lint] ******** advisories NOT checked (CARGO_DENY_ADVISORIES=skip) ********" >&2
    echo "[lint] Where GitHub is reachable: CARGO_DENY_ADVISORIES=1 make lint (fetches the RustSec database, then checks)." >&2
    exit 0
    ;;
  "" | 0) ;;
  *)
    echo "[lint] CARGO_DENY_ADVISORIES=$how: expected 1 (fetch and check), skip (do not check) or unset (check offline)" >&2
    exit 2
    ;;
esac
db="$(find "$dbs" -mindepth 2 -maxdepth 2 -name crates -type d 2>/dev/null | head -n 1 || true)"
if [ -z "$db" ]; then
  echo "[lint] advisories NOT checked: no RustSec advisory database in $dbs, so this check FAILS." >&2
  echo "[lint] Where GitHub is reachable: CARGO_DENY_ADVISORIES=1 make lint (fetches it, then checks)." >&2
  echo "[lint] Where it is not: CARGO_DENY_ADVISORIES=skip make lint (says they were not checked)." >&2
  exit 1
fi
as_of="$(git -C "$(dirname "$db")" log -1 --format=%cs 2>/dev/null || echo "of unknown date")"
echo "[lint] advisories: against the RustSec database as of $as_of, offline (CARGO_DENY_ADVISORIES=1 fetches it anew)" >&2
cargo deny --offline check advisories
