#!/usr/bin/env bash
# Validates infra/ with what this machine has: Prometheus rules (promtool
# check and unit tests), the Prometheus config, every JSON and YAML file, the
# Kubernetes manifests (check-k8s.sh: kubeconform, strict, against the
# Kubernetes, Strimzi and CloudNativePG schemas) and the compose file when a
# Docker compose client is present. Installs promtool (Debian's prometheus
# package) when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v promtool >/dev/null 2>&1; then
  echo "[infra] installing promtool (Debian package prometheus)" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq prometheus >/dev/null
fi
checked=()
promtool check rules infra/prometheus/alerts.yml >/dev/null
promtool test rules infra/prometheus/alerts_test.yml >/dev/null
checked+=("alert rules and their unit tests")
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
cp infra/prometheus/alerts.yml "$tmp/"
sed "s|/etc/prometheus/alerts.yml|$tmp/alerts.yml|" infra/prometheus/prometheus.yml >"$tmp/prometheus.yml"
promtool check config "$tmp/prometheus.yml" >/dev/null
checked+=("prometheus.yml")
while IFS= read -r f; do python3 -m json.tool "$f" >/dev/null || { echo "[infra] invalid JSON: $f" >&2; exit 1; }; done \
  < <(find infra schemas -name '*.json')
checked+=("JSON files")
if python3 -c 'import yaml' 2>/dev/null; then
  while IFS= read -r f; do
    python3 -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$f" || { echo "[infra] invalid YAML: $f" >&2; exit 1; }
  done < <(find infra -name '*.yml' -o -name '*.yaml')
  checked+=("YAML files")
else
  echo "[infra] skipped YAML parsing: python3 has no yaml module" >&2
fi
bash infra/scripts/check-k8s.sh
checked+=("infra/k8s (kubeconform, strict)")
python3 infra/scripts/check-compose.py infra/compose/docker-compose.yml
checked+=("compose security rules")
if docker compose version >/dev/null 2>&1; then
  (cd infra/compose && docker compose -f docker-compose.yml config -q)
  checked+=("docker-compose.yml")
else
  echo "[infra] skipped docker-compose.yml: no docker compose client" >&2
fi
echo "[infra] ok: ${checked[*]}"
