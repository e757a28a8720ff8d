#!/usr/bin/env bash
# The whole workspace's tests, several test binaries side by side (cargo runs
# them one after another, and most of a binary's time is waiting on the
# broker, PostgreSQL or a stack, not on the CPU). Called by test.sh, with the
# broker up and its variables exported.
#
# Each binary's output is kept apart and printed whole when it ends (a
# failing one last again, so it is not lost in the scroll); the binaries that
# took longest last time start first, so the slowest does not start last
# (their times are kept in ~/.cache/omnisaga/test-times.tsv). The doc tests
# run as one more job. OMNISAGA_TEST_JOBS sets how many run at once (4),
# OMNISAGA_TEST_STACKS how many of them end-to-end binaries (2). A
# binary whose source has a line `// make test runs this binary alone` (it
# stops the machine's PostgreSQL, say) runs first, with nothing beside it.
#
# Usage: run-tests.sh OUT, where OUT receives every binary's output (the
# caller counts its `test result:` lines).
set -uo pipefail
out="$1"
jobs="${OMNISAGA_TEST_JOBS:-4}"
stacks="${OMNISAGA_TEST_STACKS:-2}"
[ "$stacks" -ge 1 ] || stacks=1
root="$(cd "$(dirname "$0")/../.." && pwd)"
times="$HOME/.cache/omnisaga/test-times.tsv"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Build every test binary (compile errors are shown as cargo shows them) and
# list them: source path, then executable, then the package's directory.
cargo test --workspace --no-run --message-format=json-render-diagnostics >"$work/build.json" || {
  echo "[test] the tests did not build"
  exit 101
}
jq -r 'select(.reason == "compiler-artifact" and .profile.test == true and .executable != null)
  | [(.target.src_path | ltrimstr("'"$root"'/")), .executable, (.manifest_path | rtrimstr("/Cargo.toml"))] | @tsv' \
  "$work/build.json" >"$work/binaries.tsv"

# Longest first: last run's seconds, or a large number for a binary never
# timed here, so a new one does not end up last either.
touch "$times"
awk -F'\t' 'FILENAME == ARGV[1] { t[$1] = $2; next } { print (($1 in t) ? t[$1] : 100000) "\t" $0 }' "$times" "$work/binaries.tsv" |
  sort -t$'\t' -k1,1nr | cut -f2- >"$work/queue.tsv"
[ -s "$work/queue.tsv" ] || {
  echo "[test] cargo listed no test binary"
  exit 101
}
echo "[test] $(wc -l <"$work/queue.tsv") test binaries and the doc tests, $jobs at a time ($stacks of them end-to-end)"

# One job: a binary (in its package's directory, as cargo runs it) or the doc
# tests. Writes its output, its status and its seconds.
run_one() {
  local n="$1" src="$2" exe="$3" dir="$4" start=$SECONDS status
  if [ "$src" = "doc tests" ]; then
    cargo test --workspace --doc >"$work/$n.log" 2>&1
  else
    (cd "$dir" && exec "$exe") >"$work/$n.log" 2>&1
  fi
  status=$?
  printf '%s\t%s\t%s\n' "$status" "$((SECONDS - start))" "$src" >"$work/$n.done"
}

# Prints a finished job's output and records its time.
report() {
  local n="$1" status secs src
  IFS=$'\t' read -r status secs src <"$work/$n.done"
  if [ "$status" -eq 0 ]; then
    echo "     Ran $src ($secs s)"
  else
    echo "  FAILED $src ($secs s, exit $status)"
    echo "$src" >>"$work/failed"
  fi
  cat "$work/$n.log"
  cat "$work/$n.log" >>"$out"
  [ "$src" = "doc tests" ] || printf '%s\t%s\n' "$src" "$secs" >>"$work/times.new"
  rm "$work/$n.done"
}

n=0
running=0
running_stacks=0
collect() {
  # Waits for any job to end, then reports every one that has.
  wait -n 2>/dev/null || true
  local f k
  for f in "$work"/*.done; do
    [ -e "$f" ] || continue
    k="$(basename "$f" .done)"
    report "$k"
    running=$((running - 1))
    if [ -e "$work/$k.stack" ]; then running_stacks=$((running_stacks - 1)); fi
  done
}
alone() { grep -q '^// make test runs this binary alone' "$root/$1" 2>/dev/null; }

# The binaries that must run alone, one after another, first.
while IFS=$'\t' read -r src exe dir; do
  alone "$src" || continue
  n=$((n + 1))
  run_one "$n" "$src" "$exe" "$dir"
  report "$n"
done <"$work/queue.tsv"

# Then the others, `jobs` at a time, of which at most `stacks` end-to-end
# binaries: each starts whole stacks of processes under load, and more of
# them at once than the two cores carry make their waits time out.
stack_jobs=()
other_jobs=()
while IFS=$'\t' read -r src exe dir; do
  alone "$src" && continue
  case "$src" in
    e2e/tests/*) stack_jobs+=("$src"$'\t'"$exe"$'\t'"$dir") ;;
    *) other_jobs+=("$src"$'\t'"$exe"$'\t'"$dir") ;;
  esac
done <"$work/queue.tsv"
other_jobs+=("doc tests"$'\t'"-"$'\t'"-")
start() {
  local src exe dir
  IFS=$'\t' read -r src exe dir <<<"$1"
  n=$((n + 1))
  if [ "$2" = stack ]; then
    touch "$work/$n.stack"
    running_stacks=$((running_stacks + 1))
  fi
  run_one "$n" "$src" "$exe" "$dir" &
  running=$((running + 1))
}
while [ "${#stack_jobs[@]}" -gt 0 ] || [ "${#other_jobs[@]}" -gt 0 ]; do
  if [ "$running" -lt "$jobs" ] && [ "${#stack_jobs[@]}" -gt 0 ] && [ "$running_stacks" -lt "$stacks" ]; then
    start "${stack_jobs[0]}" stack
    stack_jobs=("${stack_jobs[@]:1}")
  elif [ "$running" -lt "$jobs" ] && [ "${#other_jobs[@]}" -gt 0 ]; then
    start "${other_jobs[0]}" other
    other_jobs=("${other_jobs[@]:1}")
  else
    collect
  fi
done
while [ "$running" -gt 0 ]; do collect; done

# Keep the times of binaries that still exist; the new ones win.
[ -f "$work/times.new" ] && awk -F'\t' '!seen[$1]++' "$work/times.new" "$times" >"$work/times.tsv" &&
  cp "$work/times.tsv" "$times"

if [ -s "$work/failed" ]; then
  echo
  echo "[test] failed binaries (their output is above):"
  sed 's/^/  /' "$work/failed"
  exit 101
fi
