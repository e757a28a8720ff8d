#!/usr/bin/env bash
# Runs one Apache Kafka node (KRaft: broker and controller in one JVM) in the
# foreground, its data in DIR/data, formatting DIR on first use. The process
# becomes the JVM (exec), so a signal to it reaches the broker itself.
#
#   infra/kafka/broker.sh DIR PORT CONTROLLER_PORT
#
# Kafka comes from KAFKA_HOME (a distribution's folder, or the jars
# infra/scripts/install-kafka.sh resolved from Maven Central; `make deps`
# installs them). KAFKA_HEAP_OPTS and KAFKA_JVM_OPTS replace the JVM settings.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -ne 3 ]; then
  echo "usage: $0 DIR PORT CONTROLLER_PORT" >&2
  exit 2
fi
dir="$1" port="$2" controller_port="$3"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
kafka_home="${KAFKA_HOME:-${OMNISAGA_CACHE:-$HOME/.cache/omnisaga}/kafka-$version}"
if ! compgen -G "$kafka_home/libs/kafka_2.13-*.jar" >/dev/null; then
  echo "[broker] no Apache Kafka in $kafka_home (no libs/kafka_2.13-*.jar): run \`make deps\`, or set KAFKA_HOME to a Kafka distribution" >&2
  exit 1
fi
java="${JAVA_HOME:+$JAVA_HOME/bin/}java"

mkdir -p "$dir/data"
dir="$(cd "$dir" && pwd)"
sed -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$controller_port|g" -e "s|@DATA_DIR@|$dir/data|g" \
  "$here/server.properties" >"$dir/server.properties"

# A fixed heap keeps the broker's memory flat; 512 MiB holds a few topics'
# indexes and the request buffers of a dozen clients with room to spare. The
# collector settings are the ones Kafka's own scripts use.
heap_opts="${KAFKA_HEAP_OPTS:--Xms512m -Xmx512m}"
jvm_opts="${KAFKA_JVM_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}"
run_java() {
  # shellcheck disable=SC2086 # the option strings are lists of words
  "$java" $heap_opts $jvm_opts -Dlog4j2.configurationFile="$here/log4j2.properties" \
    -cp "$kafka_home/libs/*" "$@"
}

if [ ! -f "$dir/data/meta.properties" ]; then
  cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  echo "[broker] formatting $dir/data for cluster $cluster_id" >&2
  KAFKA_HEAP_OPTS="-Xmx256m" heap_opts="-Xmx256m" run_java kafka.tools.StorageTool format \
    --cluster-id "$cluster_id" --config "$dir/server.properties" >&2
fi
echo "[broker] Apache Kafka $version from $kafka_home on 127.0.0.1:$port (controller $controller_port), data in $dir/data" >&2
set -- kafka.Kafka "$dir/server.properties"
# shellcheck disable=SC2086
exec "$java" $heap_opts $jvm_opts -Dlog4j2.configurationFile="$here/log4j2.properties" \
  -cp "$kafka_home/libs/*" "$@"
