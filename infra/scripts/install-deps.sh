#!/usr/bin/env bash
# Installs what omnisaga needs on a fresh Debian machine of the rust-svc kind:
# Debian packages for the build (protoc, libclang for the broker's libsql) and
# the Kafka-compatible broker Nisshi, pinned, into a cache outside the clone.
# Idempotent: does nothing that is already done.
set -euo pipefail

NISSHI_VERSION="${NISSHI_VERSION:-0.8.1}"
CACHE_DIR="${OMNISAGA_CACHE:-$HOME/.cache/omnisaga}"
NISSHI_ROOT="$CACHE_DIR/nisshi-$NISSHI_VERSION"
NISSHI_BIN="$NISSHI_ROOT/bin/nisshi"

log() { printf '[install] %s\n' "$*" >&2; }

need_pkgs=()
command -v protoc >/dev/null 2>&1 || need_pkgs+=(protobuf-compiler)
[ -x "$NISSHI_BIN" ] || dpkg -s libclang-dev >/dev/null 2>&1 || need_pkgs+=(libclang-dev)
command -v cmake >/dev/null 2>&1 || need_pkgs+=(cmake)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_pkgs[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if [ ! -x "$NISSHI_BIN" ]; then
  log "building the broker nisshi $NISSHI_VERSION into $NISSHI_ROOT (about 15 minutes on 2 cores, once)"
  mkdir -p "$NISSHI_ROOT"
  # rama 0.4 declares rustc 1.96; it builds and runs with 1.95, hence --ignore-rust-version.
  cargo install nisshi --version "$NISSHI_VERSION" --locked --ignore-rust-version \
    --no-default-features --features dynostore,libsql \
    --root "$NISSHI_ROOT.partial" 2>&1 | grep -E --line-buffered '^\s*(Compiling|Finished|Installing|error|warning: unused)' | awk '{ n++; if ($1=="Compiling") { if (n % 25 == 0) printf "[install] broker build: %d crates compiled\n", n > "/dev/stderr" } else print > "/dev/stderr" }'
  [ -x "$NISSHI_ROOT.partial/bin/nisshi" ] || { log "broker build failed"; exit 1; }
  rm -rf "$NISSHI_ROOT"
  mv "$NISSHI_ROOT.partial" "$NISSHI_ROOT"
fi
echo "$NISSHI_BIN"
