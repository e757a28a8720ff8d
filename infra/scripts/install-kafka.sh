#!/usr/bin/env bash
# Installs Apache Kafka (the version pinned in infra/kafka/pom.xml) into the
# cache outside the clone by resolving its jars and their dependencies from
# Maven Central, checks the result, and prints the folder to use as
# KAFKA_HOME. A KAFKA_HOME already set (a Kafka distribution of your own) is
# checked and used as it is. Idempotent: an installed version is not fetched
# again.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
pom="$root/infra/kafka/pom.xml"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")"
cache="${OMNISAGA_CACHE:-$HOME/.cache/omnisaga}"

log() { printf '[kafka] %s\n' "$*" >&2; }
fail() { log "$*"; exit 1; }

check() { # a folder holds a Kafka whose broker and storage tool load
  compgen -G "$1/libs/kafka_2.13-*.jar" >/dev/null || return 1
  compgen -G "$1/libs/kafka-clients-*.jar" >/dev/null || return 1
  compgen -G "$1/libs/scala-library-*.jar" >/dev/null || return 1
}

if [ -n "${KAFKA_HOME:-}" ]; then
  check "$KAFKA_HOME" || fail "KAFKA_HOME=$KAFKA_HOME holds no Kafka (no libs/kafka_2.13-*.jar, kafka-clients or scala-library)"
  echo "$KAFKA_HOME"
  exit 0
fi

home="$cache/kafka-$version"
if [ -f "$home/.installed" ] && check "$home"; then
  echo "$home"
  exit 0
fi

command -v mvn >/dev/null 2>&1 || fail "Maven (mvn) is needed to fetch Kafka: run infra/scripts/install-deps.sh, or set KAFKA_HOME"
log "fetching Apache Kafka $version and its dependencies from Maven Central into $home (about 45 MB, once)"
partial="$home.partial"
rm -rf "$partial"
mkdir -p "$partial/libs"
mvn_log="$(mktemp)"
trap 'rm -f "$mvn_log"' EXIT
# One line of progress per ten files fetched; Maven's own log is kept for errors.
set +e
mvn -B -f "$pom" -Dmaven.repo.local="$cache/m2" \
  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$partial/libs" 2>&1 |
  tee "$mvn_log" |
  awk '/Downloaded from/ { n++; if (n % 10 == 0) { printf "[kafka] %d files fetched\n", n > "/dev/stderr" } }'
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  log "Maven could not fetch Apache Kafka $version (exit $status); its last lines:"
  grep -E 'ERROR|Could not|resolve' "$mvn_log" | tail -n 8 >&2 || tail -n 8 "$mvn_log" >&2
  fail "check the connection to Maven Central, or set KAFKA_HOME to a Kafka $version distribution"
fi
check "$partial" || fail "Maven finished but $partial/libs lacks Kafka's jars"
# The broker's main class must be in what was fetched (unzip lists just
# that entry, and fails when there is none).
if command -v unzip >/dev/null 2>&1; then
  unzip -l "$partial/libs/kafka_2.13-$version.jar" kafka/Kafka.class >/dev/null 2>&1 ||
    fail "kafka_2.13-$version.jar has no kafka.Kafka class"
fi
touch "$partial/.installed"
rm -rf "$home"
mv "$partial" "$home"
log "Apache Kafka $version installed: $(find "$home/libs" -name '*.jar' | wc -l) jars, $(du -sh "$home" | cut -f1)"
echo "$home"
