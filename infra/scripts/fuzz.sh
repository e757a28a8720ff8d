#!/usr/bin/env bash
# `make fuzz`: each cargo-fuzz target in tools/fuzz for FUZZ_SECONDS (30)
# seconds, from its checked-in seed corpus plus what earlier runs on this
# machine found. Runs on the stable toolchain: libFuzzer's coverage
# instrumentation with `--sanitizer none` (AddressSanitizer needs nightly;
# FUZZ_SANITIZER=address with FUZZ_TOOLCHAIN=nightly where one is installed).
# A failing input is kept in target/fuzz/artifacts/<target>/ and named in
# the output; `cargo fuzz run --fuzz-dir tools/fuzz <target> <file>`
# replays it. FUZZ_TARGETS picks targets (all by default).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
seconds="${FUZZ_SECONDS:-30}"
sanitizer="${FUZZ_SANITIZER:-none}"
toolchain="${FUZZ_TOOLCHAIN:-}"
cache="$HOME/.cache/omnisaga"
fuzz_dir="$root/tools/fuzz"
triple="$(rustc -vV | sed -n 's/^host: //p')"

log() { printf '[fuzz] %s\n' "$*" >&2; }

if ! command -v cargo-fuzz >/dev/null; then
  log "installing cargo-fuzz 0.13.2 (once, about two minutes)"
  cargo install cargo-fuzz --locked --version 0.13.2 --quiet
fi

# Its own target directory, outside the clone and apart from the main
# build's (the instrumented crates differ). Like claim-build-dir.sh: the
# clone's own crates are rebuilt when another clone built here last.
export CARGO_TARGET_DIR="$cache/fuzz-target"
unset CARGO_BUILD_BUILD_DIR
mark="$CARGO_TARGET_DIR/.omnisaga-clone"
if [ -d "$CARGO_TARGET_DIR" ] && [ "$(cat "$mark" 2>/dev/null || true)" != "$root" ]; then
  own="$(cd "$fuzz_dir" && cargo metadata --format-version 1 |
    python3 -c 'import json, sys; print(" ".join("-p " + p["name"] for p in json.load(sys.stdin)["packages"] if p["source"] is None))')"
  log "the fuzz build directory was last used by another clone: rebuilding this clone's crates"
  # shellcheck disable=SC2086 # one -p per crate
  (cd "$fuzz_dir" && cargo clean --quiet --release --target "$triple" $own)
fi
mkdir -p "$CARGO_TARGET_DIR"
printf '%s\n' "$root" >"$mark"

fuzz=(cargo ${toolchain:+"+$toolchain"} fuzz)
targets="${FUZZ_TARGETS:-$("${fuzz[@]}" list --fuzz-dir "$fuzz_dir" | tr '\n' ' ')}"
log "building ${targets}(sanitizer: $sanitizer; the first build takes several minutes)"
"${fuzz[@]}" build --fuzz-dir "$fuzz_dir" --sanitizer "$sanitizer" --target "$triple"

summary=()
for target in $targets; do
  seeds="$fuzz_dir/corpus/$target"
  found="$cache/fuzz-corpus/$target"
  artifacts="$root/target/fuzz/artifacts/$target"
  out="$root/target/fuzz/$target.log"
  mkdir -p "$found" "$artifacts"
  log "$target: ${seconds} s from $(find "$seeds" -type f | wc -l) seeds and $(find "$found" -type f | wc -l) inputs found before"
  # New inputs go to the first corpus directory (outside the clone); the
  # seeds are only read.
  if ! "${fuzz[@]}" run --fuzz-dir "$fuzz_dir" --sanitizer "$sanitizer" --target "$triple" "$target" \
    "$found" "$seeds" -- -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$artifacts/" -close_fd_mask=3 >"$out" 2>&1; then
    tail -n 40 "$out" >&2
    log "$target FAILED: the input is in $artifacts/ (log: $out)"
    exit 1
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -n1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out" | tail -n1)"
  cov="$(grep -o 'cov: [0-9]*' "$out" | tail -n1 | cut -d' ' -f2)"
  summary+=("$(printf '%-18s %10s runs %8s exec/s  coverage %s' "$target" "${runs:-?}" "${rate:-?}" "${cov:-?}")")
done
log "no failures in ${seconds} s per target:"
printf '  %s\n' "${summary[@]}" >&2
