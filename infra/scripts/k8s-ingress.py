#!/usr/bin/env python3
"""Checks that the Ingress (infra/k8s/ingress.yaml) routes exactly the public
API: every operation of schemas/openapi/<service>.json needing orders:read or
orders:write (the customers' routes, order's and notification's) matches one
path of the Ingress, whose backend is its service on its public port; no other
operation (an admin, internal or service route, analysts', the probes, the
metrics, the documents) matches any path. Then proves the check bites: an
Ingress forwarding all of /v1 to order, as it once did, must fail it.

    k8s-ingress.py    (check-k8s.sh, make test)
"""
import copy
import json
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVICES = ["order", "payment", "warehouse", "notification", "analytics"]
CUSTOMER_SCOPES = {"orders:read", "orders:write"}
SAMPLE = "0190e7a4-0000-7000-8000-000000000001"


def rules(ingress):
    """(regex, service, port name) of each path of the Ingress."""
    out = []
    for rule in ingress["spec"]["rules"]:
        for p in rule["http"]["paths"]:
            backend = p["backend"]["service"]
            if p["pathType"] == "Prefix":
                regex = "^" + re.escape(p["path"].rstrip("/")) + "(/.*)?$"
            elif p["pathType"] == "Exact":
                regex = "^" + re.escape(p["path"]) + "$"
            else:
                regex = p["path"]
            out.append((regex, backend["name"], backend["port"].get("name")))
    return out


def operations():
    """(service, method, concrete path, scope or None) of every document."""
    for service in SERVICES:
        doc = json.loads((ROOT / f"schemas/openapi/{service}.json").read_text())
        for template, item in doc["paths"].items():
            for method, op in item.items():
                scopes = [s for req in op.get("security", []) for s in req.get("bearer", [])]
                path = re.sub(r"\{[^}]+\}", lambda m: "1" if "attempt" in m.group(0) else SAMPLE, template)
                yield service, method.upper(), path, (scopes[0] if scopes else None)


def problems(ingress):
    found = []
    paths = rules(ingress)
    for service, method, path, scope in operations():
        matched = [(s, port) for regex, s, port in paths if re.search(regex, path)]
        public = service in ("order", "notification") and scope in CUSTOMER_SCOPES
        if public and matched != [(service, "http")]:
            found.append(f"{method} {path} ({service}, {scope}): routed to {matched or 'nothing'}, not {service}:http")
        if not public and matched:
            found.append(f"{method} {path} ({service}, {scope or 'open'}): routed to {matched}, must not be public")
    return found


def main():
    ingress = yaml.safe_load((ROOT / "infra/k8s/ingress.yaml").read_text())
    found = problems(ingress)
    if found:
        print("[k8s] the Ingress does not route exactly the public API:", *found, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    wide = copy.deepcopy(ingress)
    wide["spec"]["rules"][0]["http"]["paths"] = [
        {"path": "/v1", "pathType": "Prefix", "backend": {"service": {"name": "order", "port": {"name": "http"}}}}
    ]
    if not problems(wide):
        print("[k8s] the Ingress check does not bite: /v1 to order passed it", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
