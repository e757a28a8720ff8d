#!/usr/bin/env python3
"""Writes infra/k8s/kafka-topics.yaml and infra/k8s/kafka-users.yaml from the
topic catalog (schemas/topics.json): a Strimzi KafkaTopic per topic and
dead-letter topic, with the catalog's retention, and a KafkaUser per service
and for analysts, SCRAM-SHA-512, with the ACLs `omnisaga kafka provision`
creates (crates/catalog/src/access.rs, mirrored here rule for rule):

- a service writes the topic it owns and the dead-letter topics of the
  topics it consumes, reads the topics it consumes, and reads (joins) the
  consumer groups whose ids start with `<prefix><service>`;
- the analyst reads every saga topic (not the dead-letter topics) and the
  groups starting with `<prefix>analyst`, and writes nothing.

    k8s-kafka.py           rewrite both files
    k8s-kafka.py --check   fail when they differ from the catalog (make test)

Partitions: at least 6 on the cluster (six consumers of a group can share a
topic, the HorizontalPodAutoscalers' maximum), the catalog's when it asks for
more; replicas 3 and min.insync.replicas 2 (catalog::min_insync_replicas(3)).
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CATALOG = os.path.join(ROOT, "schemas", "topics.json")
OUT = os.path.join(ROOT, "infra", "k8s")
PREFIX = "omnisaga."  # the catalog's names are under the default prefix
CLUSTER = "omnisaga"  # the Kafka resource of infra/k8s/kafka.yaml
MIN_PARTITIONS = 6
REPLICAS = 3
ANALYST = "analyst"
HEADER = (
    "# Generated from schemas/topics.json by infra/scripts/k8s-kafka.py: change the\n"
    "# catalog and run the script; make test fails while this file differs.\n"
)


def min_insync_replicas(replicas):
    return max(1, min(2, replicas - 1))


def base(topic):
    assert topic["name"].startswith(PREFIX), topic["name"]
    return topic["name"][len(PREFIX):]


def services(topics):
    names = set()
    for t in topics:
        names.add(t["owner"])
        names.update(t["consumers"])
    return sorted(names)


def grants(topics):
    """(user, resource type, name, pattern, operation), sorted, each once: access.rs's grants."""
    out = set()
    for service in services(topics):
        user = PREFIX + service
        for t in topics:
            if t["owner"] == service:
                out.add((user, "topic", t["name"], "literal", "Write"))
            if service in t["consumers"]:
                out.add((user, "topic", t["name"], "literal", "Read"))
                out.add((user, "topic", t["dead_letter_topic"], "literal", "Write"))
        out.add((user, "group", user, "prefix", "Read"))
    analyst = PREFIX + ANALYST
    for t in topics:
        out.add((analyst, "topic", t["name"], "literal", "Read"))
    out.add((analyst, "group", analyst, "prefix", "Read"))
    return sorted(out)


def topics_yaml(catalog):
    partitions = max(MIN_PARTITIONS, catalog["topics"][0]["partitions"])
    docs = []
    for t in catalog["topics"]:
        for name, retention, what in (
            (t["name"], t["retention_ms"], f"owner {t['owner']}; consumers {', '.join(t['consumers']) or 'none'}"),
            (t["dead_letter_topic"], t["dead_letter_retention_ms"], f"dead letters of {t['name']}"),
        ):
            docs.append(
                f"# {what}\n"
                "apiVersion: kafka.strimzi.io/v1\n"
                "kind: KafkaTopic\n"
                "metadata:\n"
                f"  name: {name}\n"
                f"  labels: {{strimzi.io/cluster: {CLUSTER}, app.kubernetes.io/part-of: omnisaga}}\n"
                "spec:\n"
                f"  partitions: {partitions}\n"
                f"  replicas: {REPLICAS}\n"
                "  config:\n"
                f'    retention.ms: "{retention}"\n'
                f'    min.insync.replicas: "{min_insync_replicas(REPLICAS)}"\n'
            )
    return HEADER + "---\n".join(docs)


def users_yaml(catalog):
    docs = []
    by_user = {}
    for user, rtype, name, pattern, op in grants(catalog["topics"]):
        by_user.setdefault(user, []).append((rtype, name, pattern, op))
    for who in services(catalog["topics"]) + [ANALYST]:
        user = PREFIX + who
        acls = "".join(
            f"      - {{resource: {{type: {rtype}, name: {name}, patternType: {pattern}}}, operations: [{op}]}}\n"
            for rtype, name, pattern, op in by_user[user]
        )
        docs.append(
            f"# {'analysts: the saga topics, read only' if who == ANALYST else 'the ' + who + ' service'};"
            f" Strimzi keeps the password in the Secret {user}\n"
            "apiVersion: kafka.strimzi.io/v1\n"
            "kind: KafkaUser\n"
            "metadata:\n"
            f"  name: {user}\n"
            f"  labels: {{strimzi.io/cluster: {CLUSTER}, app.kubernetes.io/part-of: omnisaga}}\n"
            "spec:\n"
            "  authentication: {type: scram-sha-512}\n"
            "  authorization:\n"
            "    type: simple\n"
            "    acls:\n" + acls
        )
    return HEADER + "---\n".join(docs)


def main():
    check = sys.argv[1:] == ["--check"]
    if sys.argv[1:] not in ([], ["--check"]):
        sys.exit(__doc__)
    with open(CATALOG) as f:
        catalog = json.load(f)
    stale = []
    for name, text in (("kafka-topics.yaml", topics_yaml(catalog)), ("kafka-users.yaml", users_yaml(catalog))):
        path = os.path.join(OUT, name)
        current = open(path).read() if os.path.exists(path) else None
        if current == text:
            continue
        if check:
            stale.append(f"infra/k8s/{name}")
        else:
            with open(path, "w") as f:
                f.write(text)
    if stale:
        sys.exit(
            f"{' and '.join(stale)} differ from schemas/topics.json: run python3 infra/scripts/k8s-kafka.py"
        )


if __name__ == "__main__":
    main()
