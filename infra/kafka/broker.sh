#!/usr/bin/env bash
# Runs one Apache Kafka node (KRaft: broker and controller in one JVM) in the
# foreground, its data in DIR/data, formatting DIR on first use. The process
# becomes the JVM (exec), so a signal to it reaches the broker itself.
#
#   infra/kafka/broker.sh DIR PORT CONTROLLER_PORT
#
# Kafka comes from infra/scripts/install-kafka.sh: KAFKA_HOME when set, else
# the jars it resolved from Maven Central (`make deps` fetches them; a missing
# install is fetched here). KAFKA_HEAP_OPTS and KAFKA_JVM_OPTS replace the
# JVM settings.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -ne 3 ]; then
  echo "usage: $0 DIR PORT CONTROLLER_PORT" >&2
  exit 2
fi
dir="$1" port="$2" controller_port="$3"
kafka_home="$(bash "$here/../scripts/install-kafka.sh")"
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
# shellcheck disable=SC2206 # the option strings are lists of words
java_cmd=("$java" $heap_opts $jvm_opts -Dlog4j2.configurationFile="$here/log4j2.properties" -cp "$kafka_home/libs/*")

if [ ! -f "$dir/data/meta.properties" ]; then
  # A URL-safe base64 UUID, as Kafka's own `random-uuid` makes one: never
  # starting with '-', which the format tool would read as an option.
  cluster_id="-"
  while [[ "$cluster_id" == -* ]]; do
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  done
  echo "[broker] formatting $dir/data for cluster $cluster_id" >&2
  "${java_cmd[@]}" kafka.tools.StorageTool format --cluster-id "$cluster_id" --config "$dir/server.properties" >&2
fi
echo "[broker] Apache Kafka from $kafka_home on 127.0.0.1:$port (controller $controller_port), data in $dir/data" >&2
exec "${java_cmd[@]}" kafka.Kafka "$dir/server.properties"
