#!/usr/bin/env python3
"""Holds infra/compose/docker-compose.yml to the deployment's security rules
(docs/security.md; docs/deploy.md, Docker compose): no secret in the file or its environment
(no ${...} and no password, token or key variable given a value), each
container mounting only its own secrets volume, only the order API
published on every address and the UIs on 127.0.0.1 only, and nothing
from a committed key directory. Exits 1 naming each broken rule."""
import re
import sys

import yaml

SERVICES = ["order", "payment", "warehouse", "notification", "analytics"]
UIS = {"jaeger", "prometheus", "grafana", "pushgateway"}
# Who may mount which secrets volumes: each service its own; the one-shot
# jobs that make or hand them out, all they hand out.
ALLOWED = {svc: {f"secrets-{svc}"} for svc in SERVICES}
ALLOWED.update({
    "postgres": {"secrets-postgres"},
    "grafana": {"secrets-grafana"},
    "secrets": {f"secrets-{s}" for s in SERVICES + ["admin", "postgres", "grafana"]},
    "kafka-provision": {f"secrets-{s}" for s in SERVICES + ["admin"]},
})
SECRET_NAME = re.compile(r"(PASSWORD|TOKEN|SECRET|KEY)$")


def problems(path):
    text = open(path).read()
    if "${" in text:
        yield "a value is interpolated from the environment (${...}): secrets are made on first start"
    doc = yaml.safe_load(text)
    for name, svc in doc["services"].items():
        env = svc.get("environment") or {}
        items = env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env)
        for key, _ in items:
            if SECRET_NAME.search(key):
                yield f"{name}: {key} gives a secret in the environment (use {key}_FILE)"
        for port in svc.get("ports", []):
            published = str(port)
            if name == "order" and published == "8080:8080":
                continue
            if name in UIS and published.startswith("127.0.0.1:"):
                continue
            yield f"{name}: publishes {published} (only the order API, and the UIs on 127.0.0.1)"
        for volume in svc.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("secrets-") and source not in ALLOWED.get(name, set()):
                yield f"{name}: mounts {source}, which is not its own"
            if source in ("./auth", "kafka-users") and name != "kafka-provision":
                yield f"{name}: mounts {source}, which holds others' secrets"


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "infra/compose/docker-compose.yml"
    found = list(problems(path))
    for p in found:
        print(f"[compose] {p}", file=sys.stderr)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
