#!/usr/bin/env bash
# `make lint`: proves that a new event type does not compile until every
# service that decides over the saga's events says what it does with it.
# In a copy of the workspace (this clone untouched), adds a message to the
# `omnisaga.v1` Envelope's payload oneof, names it where the proto crate
# names every type, and runs `cargo check`: it must fail, with the payload
# left unmatched in the wire.rs of order, payment, the warehouse and
# notification. A catch-all arm creeping into one of them fails this check.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
# Its own target directory: the copy's crates must not pass for the clone's
# in the shared build directory.
target="${HOME}/.cache/omnisaga/check-new-event"
copy="$(mktemp -d)"
trap 'rm -rf "$copy"' EXIT

tar -C "$root" --exclude=./target --exclude=./.git --exclude=./.omnisaga -cf - . | tar -C "$copy" -xf -
proto="$copy/proto/omnisaga/v1/events.proto"
python3 - "$proto" "$copy/proto/src/lib.rs" <<'PY'
import sys
proto, lib = sys.argv[1], sys.argv[2]
s = open(proto).read()
anchor = "  oneof payload {\n"
assert anchor in s, "no payload oneof in events.proto"
s = s.replace(anchor, anchor + "    OrderGiftWrapped order_gift_wrapped = 999;\n", 1)
s += "\n// Added by check-new-event.sh only.\nmessage OrderGiftWrapped {\n  string order_id = 1;\n}\n"
open(proto, "w").write(s)
s = open(lib).read()
anchor = "        match self {\n"
assert anchor in s, "no match over the payload in proto/src/lib.rs"
s = s.replace(anchor, anchor + '            P::OrderGiftWrapped(_) => "OrderGiftWrapped",\n', 1)
open(lib, "w").write(s)
PY

echo "[check-new-event] cargo check with a new payload type OrderGiftWrapped (expected to fail)"
set +e
(cd "$copy" && CARGO_TARGET_DIR="$target" CARGO_BUILD_BUILD_DIR="$target" \
  cargo check --workspace --keep-going --message-format short --quiet 2>&1) >"$copy/check.out"
status=$?
set -e
if [ "$status" -eq 0 ]; then
  echo "[check-new-event] FAILED: the workspace compiles with an event type nobody handles"
  exit 1
fi
missing=()
for service in order payment warehouse notification; do
  grep -q "^services/$service/src/wire.rs:.*OrderGiftWrapped.*not covered" "$copy/check.out" || missing+=("$service")
done
if [ "${#missing[@]}" -ne 0 ]; then
  echo "[check-new-event] FAILED: the new type compiles unhandled in: ${missing[*]}. cargo said:"
  grep -E "^(error|services/)" "$copy/check.out" | head -n 40
  exit 1
fi
echo "[check-new-event] ok: the new type is a compile error in the wire.rs of order, payment, warehouse and notification:"
grep -E "OrderGiftWrapped.*not covered" "$copy/check.out" | cut -d: -f1,2 | sort -u | sed 's/^/  /'
