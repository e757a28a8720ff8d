#!/usr/bin/env python3
"""Builds kubeconform's schema folders from what the package registries ship.

    schemas.py kubernetes SRC_DIR OUT_DIR
        SRC_DIR is a `vX.Y.Z-local-strict` folder of the PyPI package
        kubernetes-validate: one JSON schema per definition, each referring
        to the others in `_definitions.json`. Writes one standalone schema
        per kind (`deployment-apps-v1.json`, the layout of kubeconform's
        `{{ .ResourceKind }}{{ .KindSuffix }}.json`), with the definitions it
        needs under `$defs`, so kubeconform loads nothing else.

    schemas.py crds OUT_DIR CRD.yaml...
        Writes one schema per kind and served version of each
        CustomResourceDefinition as `OUT_DIR/<group>/<kind>_<version>.json`
        (lowercase, as openapi2jsonschema names them; kubeconform's
        `{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json`),
        strict: an object that lists its properties takes no others unless
        the CRD preserves unknown fields there, `nullable` admits null, and
        `x-kubernetes-int-or-string` takes either.

Nothing is fetched here; infra/scripts/check-k8s.sh fetches and calls this.
"""

import json
import os
import sys

import yaml

# How the kinds' files and `_definitions.json` itself refer to a definition.
DEFS = ("/api/_definitions.json#/$defs/", "#/$defs/")


def kubernetes(src, out):
    with open(os.path.join(src, "_definitions.json")) as f:
        defs = json.load(f)["$defs"]
    os.makedirs(out, exist_ok=True)
    written = 0
    for name in sorted(os.listdir(src)):
        if name.startswith("_") or name == "all.json" or not name.endswith(".json"):
            continue
        with open(os.path.join(src, name)) as f:
            schema = json.load(f)
        if "x-kubernetes-group-version-kind" not in schema:
            continue  # a part of a kind, not one kubeconform looks up
        needed = {}
        pending = [schema]
        while pending:
            node = pending.pop()
            for ref in refs(node):
                if ref not in needed:
                    needed[ref] = defs[ref]
                    pending.append(defs[ref])
        schema = local_refs(schema)
        schema.pop("$id", None)
        if needed:
            schema["$defs"] = {k: local_refs(v) for k, v in sorted(needed.items())}
        with open(os.path.join(out, name), "w") as f:
            json.dump(schema, f, separators=(",", ":"))
        written += 1
    if written == 0:
        sys.exit(f"no Kubernetes kinds in {src}")


def refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield definition(v)
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def definition(ref):
    for prefix in DEFS:
        if ref.startswith(prefix):
            return ref[len(prefix):]
    sys.exit(f"unexpected $ref {ref}")


def local_refs(node):
    if isinstance(node, dict):
        return {
            k: ("#/$defs/" + definition(v) if k == "$ref" and isinstance(v, str) else local_refs(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [local_refs(v) for v in node]
    return node


def strict(node):
    """An OpenAPI v3 schema of a CRD as a strict JSON schema."""
    if isinstance(node, list):
        return [strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: strict(v) if k not in ("enum", "default", "example") else v for k, v in node.items()}
    if node.pop("x-kubernetes-int-or-string", False):
        node.pop("type", None)
        node.setdefault("anyOf", [{"type": "string"}, {"type": "integer"}])
    if node.pop("nullable", False):
        if "type" in node:
            types = node["type"] if isinstance(node["type"], list) else [node["type"]]
            node["type"] = types + ["null"]
        else:
            node = {"anyOf": [{"type": "null"}, node]}
    preserve = node.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in node and "additionalProperties" not in node and not preserve:
        node["additionalProperties"] = False
    return node


def crds(out, files):
    written = 0
    for path in files:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for crd in docs:
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            group, kind = spec["group"], spec["names"]["kind"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                schema = strict(version["schema"]["openAPIV3Schema"])
                folder = os.path.join(out, group)
                os.makedirs(folder, exist_ok=True)
                name = f"{kind.lower()}_{version['name'].lower()}.json"
                with open(os.path.join(folder, name), "w") as f:
                    json.dump(schema, f, separators=(",", ":"))
                written += 1
    if written == 0:
        sys.exit(f"no CustomResourceDefinition in {' '.join(files)}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "kubernetes":
        kubernetes(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 4 and sys.argv[1] == "crds":
        crds(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)
