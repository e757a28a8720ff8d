#!/usr/bin/env bash
# Makes cargo's shared build directory (CARGO_BUILD_BUILD_DIR, kept outside
# the clone so every clone and CI run reuses the compiled dependencies) safe
# for this clone. Cargo keys the workspace's own crates by their path inside
# the workspace, not by the clone, and judges them fresh by file times: a
# build from another clone would be taken for this clone's, with that clone's
# code and compiled-in paths. So when the last clone to build here was
# another one, this clone's crates are cleaned (the dependencies stay) and
# rebuild from its own sources. Two clones building at the same moment still
# share; one after the other is safe.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build_dir="${CARGO_BUILD_BUILD_DIR:?CARGO_BUILD_BUILD_DIR is not set (make sets it)}"
mark="$build_dir/.omnisaga-clone"
[ "$(cat "$mark" 2>/dev/null || true)" = "$root" ] && exit 0
if [ -d "$build_dir" ]; then
  members="$(cd "$root" && cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json, sys; print(" ".join("-p " + p["name"] for p in json.load(sys.stdin)["packages"]))')"
  echo "[build] the shared build directory was last used by another clone: rebuilding this clone's crates" >&2
  # shellcheck disable=SC2086 # one -p per member
  (cd "$root" && cargo clean --quiet $members)
fi
mkdir -p "$build_dir"
printf '%s\n' "$root" >"$mark"
