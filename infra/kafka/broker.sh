#!/usr/bin/env bash
# Runs one Apache Kafka node (KRaft: broker and controller in one JVM) in the
# foreground, its data in DIR/data, formatting DIR on first use. The process
# becomes the JVM (exec), so a signal to it reaches the broker itself.
#
# Clients authenticate with SASL/SCRAM (server.properties); the broker's
# admin user is `admin`, its password in DIR/admin.password (made on first
# use, readable by its owner only): `omnisaga kafka provision` logs in with
# it to create the services' users and ACLs. The controller listener takes
# SASL/PLAIN with the same user and password: nobody gets in unauthenticated.
#
# KAFKA_LISTEN_HOST (default 127.0.0.1) is the address clients connect to,
# KAFKA_ADVERTISED_HOST (default the same) the name they are told and
# KAFKA_ADVERTISED_PORT (default PORT) the port (a proxy in front of the
# broker, as the fault suite's, has clients told its own); the controller
# listens on 127.0.0.1 whatever they say. KAFKA_ADMIN_PASSWORD
# sets the admin's password of a new data directory (a deployment that
# provisions users from another container knows it that way).
#
# A node of a cluster (the fault suite's `--brokers 3`) is told its place:
# KAFKA_NODE_ID (default 1), KAFKA_QUORUM_VOTERS (default this node alone,
# `ID@127.0.0.1:CONTROLLER_PORT`), KAFKA_CLUSTER_ID (every node formatted
# with the same; default a new one), KAFKA_INTERNAL_REPLICATION (replicas of
# the internal topics, default 1; their min.insync.replicas one fewer, at
# least 1, at most 2) and KAFKA_REPLICA_LAG_MS (replica.lag.time.max.ms,
# default Kafka's 30000).
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
umask 077
if [ -f "$dir/data/meta.properties" ] && [ ! -f "$dir/admin.password" ]; then
  # Formatted before the broker had users: nobody could log in to it.
  aside="$dir/data.before-sasl.$(date +%Y%m%d%H%M%S)"
  echo "[broker] $dir/data predates SASL users (no admin.password); moving it to $aside and starting afresh" >&2
  mv "$dir/data" "$aside"
  mkdir -p "$dir/data"
fi
if [ ! -f "$dir/admin.password" ]; then
  if [ -n "${KAFKA_ADMIN_PASSWORD:-}" ]; then
    printf '%s' "$KAFKA_ADMIN_PASSWORD" >"$dir/admin.password.new"
  else
    head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$dir/admin.password.new"
  fi
  mv "$dir/admin.password.new" "$dir/admin.password"
fi
admin_password="$(cat "$dir/admin.password")"
case "$admin_password" in
  *'"'* | *'|'* | *'\'* | *']'* | *','* | *' '*) echo "[broker] the admin password may not hold quotes, |, \\, ], commas or spaces" >&2; exit 2 ;;
esac
host="${KAFKA_LISTEN_HOST:-127.0.0.1}"
advertised_host="${KAFKA_ADVERTISED_HOST:-$host}"
advertised_port="${KAFKA_ADVERTISED_PORT:-$port}"
node_id="${KAFKA_NODE_ID:-1}"
voters="${KAFKA_QUORUM_VOTERS:-$node_id@127.0.0.1:$controller_port}"
internal_rf="${KAFKA_INTERNAL_REPLICATION:-1}"
internal_min_isr=$((internal_rf - 1 < 1 ? 1 : (internal_rf - 1 > 2 ? 2 : internal_rf - 1)))
replica_lag_ms="${KAFKA_REPLICA_LAG_MS:-30000}"
sed -e "s|@NODE_ID@|$node_id|g" -e "s|@VOTERS@|$voters|g" -e "s|@INTERNAL_RF@|$internal_rf|g" \
  -e "s|@INTERNAL_MIN_ISR@|$internal_min_isr|g" -e "s|@REPLICA_LAG_MS@|$replica_lag_ms|g" \
  -e "s|@PORT@|$port|g" -e "s|@ADVERTISED_PORT@|$advertised_port|g" -e "s|@CONTROLLER_PORT@|$controller_port|g" -e "s|@DATA_DIR@|$dir/data|g" \
  -e "s|@HOST@|$host|g" -e "s|@ADVERTISED_HOST@|$advertised_host|g" \
  -e "s|@ADMIN_PASSWORD@|$admin_password|g" "$here/server.properties" >"$dir/server.properties"

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
  cluster_id="${KAFKA_CLUSTER_ID:--}"
  while [[ "$cluster_id" == -* ]]; do
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  done
  echo "[broker] formatting $dir/data for cluster $cluster_id" >&2
  "${java_cmd[@]}" kafka.tools.StorageTool format --cluster-id "$cluster_id" --config "$dir/server.properties" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$admin_password]" >&2
fi
echo "[broker] Apache Kafka from $kafka_home on $host:$port (controller $controller_port), data in $dir/data" >&2
exec "${java_cmd[@]}" kafka.Kafka "$dir/server.properties"
