#!/usr/bin/env bash
# Installs what omnisaga needs on a fresh Debian machine: the Debian packages
# the build and the stack use (protoc for the protobuf code, OpenSSL's headers
# and pkg-config for librdkafka's TLS and SASL/SCRAM, a JDK and Maven for
# Kafka, a headless Chromium for the dashboard's browser test, Prometheus for
# `make run`'s metrics and promtool), then Apache
# Kafka into the cache outside the clone
# (install-kafka.sh), and schemathesis from PyPI into its own virtualenv in
# the cache (the API fuzzer e2e/tests/api_fuzz.rs runs). PostgreSQL is
# ensure-postgres.sh's. Idempotent: does nothing that is already done.
# Prints KAFKA_HOME on standard output.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
log() { printf '[install] %s\n' "$*" >&2; }

need_pkgs=()
command -v protoc >/dev/null 2>&1 || need_pkgs+=(protobuf-compiler)
command -v cmake >/dev/null 2>&1 || need_pkgs+=(cmake)
command -v make >/dev/null 2>&1 || need_pkgs+=(make)
command -v unzip >/dev/null 2>&1 || need_pkgs+=(unzip)
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
[ -f /usr/include/openssl/ssl.h ] || need_pkgs+=(libssl-dev)
command -v chromium-headless-shell >/dev/null 2>&1 || need_pkgs+=(chromium-headless-shell)
command -v prometheus >/dev/null 2>&1 || need_pkgs+=(prometheus)
if [ -z "${KAFKA_HOME:-}" ]; then
  # Kafka 4 needs Java 17 or newer.
  java_major="$("${JAVA_HOME:+$JAVA_HOME/bin/}java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1 || true)"
  [ "${java_major:-0}" -ge 17 ] 2>/dev/null || need_pkgs+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null 2>&1 || need_pkgs+=(maven)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_pkgs[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# Schemathesis, pinned, in a virtualenv of its own under the cache; the
# tests run it as ~/.cache/omnisaga/schemathesis/bin/schemathesis.
schemathesis_version=4.32.5
venv="${HOME}/.cache/omnisaga/schemathesis-${schemathesis_version}"
if [ ! -f "$venv/.installed" ]; then
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    log "installing Debian packages: python3-venv"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
  fi
  log "installing schemathesis ${schemathesis_version} from PyPI into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==${schemathesis_version}" >&2
  # Only a whole install is marked: an interrupted one is done again.
  touch "$venv/.installed"
fi
ln -sfn "$venv" "${HOME}/.cache/omnisaga/schemathesis"

bash "$here/install-kafka.sh"
