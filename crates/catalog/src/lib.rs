//! The topic catalog: `schemas/topics.json`, compiled in and read as data.
//! Its own crate, so the `omnisaga` CLI reads it without the runtime's
//! database and server; the runtime re-exports it as `omnisaga_runtime::catalog`.
//!
//! The registry file other teams read is the only place a topic is written
//! down: its name, owner, the event types it carries, who consumes it, its
//! partitions and retention, its dead-letter topic; and the event types a
//! service keeps without publishing them (`unpublished`). The runtime names,
//! creates and subscribes to topics from it (`omnisaga_runtime::kafka::Topics`,
//! `omnisaga_runtime::kafka::ensure_topics`), so a topic added or changed there is
//! what the services use, and a catalog that contradicts itself or the
//! proto `Envelope` fails this module's tests rather than a deployment.
//!
//! The file names topics under the default `KAFKA_TOPIC_PREFIX`,
//! [`DEFAULT_PREFIX`]; a stack with another prefix swaps it.
//!
//! Two things follow from the catalog for every Kafka client: who may read
//! and write what ([`access`], the ACLs `omnisaga kafka provision` creates)
//! and how a client authenticates ([`client`]).

pub mod access;
pub mod client;

use std::{collections::BTreeSet, sync::LazyLock};

use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;

/// The catalog as published, `schemas/topics.json`.
const JSON: &str = include_str!("../../../schemas/topics.json");

/// The prefix the catalog's names are written under: the default of
/// `KAFKA_TOPIC_PREFIX`.
pub const DEFAULT_PREFIX: &str = "omnisaga.";

/// What a topic's name is followed by in its dead-letter topic's name.
pub const DEAD_LETTER_SUFFIX: &str = ".dlq";

/// One topic of the catalog. The prose (`purpose`, `key`, `retention`) is
/// for people: the code never decides on it, the CLI shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct Topic {
    /// The name under [`DEFAULT_PREFIX`], e.g. `omnisaga.orders.v1`.
    name: String,
    /// The only service that publishes on it.
    pub owner: String,
    /// Every event type (a payload of the `Envelope`) it carries.
    pub message_types: Vec<String>,
    /// Every service that consumes it.
    pub consumers: Vec<String>,
    /// Partitions it is created with (`KAFKA_TOPIC_PARTITIONS` overrides).
    pub partitions: i32,
    /// Replicas of each partition it is created with: 1, a development
    /// broker's (`KAFKA_TOPIC_REPLICATION_FACTOR` sets a cluster's, 3).
    pub replication_factor: i32,
    /// Its `retention.ms`.
    pub retention_ms: u64,
    /// Its dead-letter topic's `retention.ms`.
    pub dead_letter_retention_ms: u64,
    /// The dead-letter topic's name under [`DEFAULT_PREFIX`].
    dead_letter_topic: String,
    /// What the topic is for, in a sentence.
    pub purpose: String,
    /// What its records are keyed by.
    pub key: String,
    /// Its retention, in words.
    pub retention: String,
}

impl Topic {
    /// The name without a prefix, e.g. `orders.v1`.
    pub fn base_name(&self) -> &str {
        self.name.strip_prefix(DEFAULT_PREFIX).unwrap_or(&self.name)
    }

    /// The name in a stack whose topic names start with `prefix`.
    pub fn name(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.base_name())
    }

    /// Its dead-letter topic's name in a stack whose topic names start with `prefix`.
    pub fn dead_letter_name(&self, prefix: &str) -> String {
        dead_letter(&self.name(prefix))
    }

    /// True when `event_type` is one of its message types.
    pub fn carries(&self, event_type: &str) -> bool {
        self.message_types.iter().any(|t| t == event_type)
    }

    /// True when `service` consumes it.
    pub fn is_consumed_by(&self, service: &str) -> bool {
        self.consumers.iter().any(|c| c == service)
    }
}

/// The dead-letter topic of `topic` (any prefix): `<topic>.dlq`.
pub fn dead_letter(topic: &str) -> String {
    format!("{topic}{DEAD_LETTER_SUFFIX}")
}

/// An event type (a payload of the `Envelope`) a service keeps in its own
/// event store and publishes on no topic.
#[derive(Debug, Clone, Deserialize)]
pub struct Unpublished {
    pub message_type: String,
    /// The service whose event store keeps it.
    pub owner: String,
    /// Why it is kept and not published, in a sentence.
    pub purpose: String,
}

/// Every topic of the saga, and the event types on none.
#[derive(Debug, Clone, Deserialize)]
pub struct Catalog {
    topics: Vec<Topic>,
    #[serde(default)]
    unpublished: Vec<Unpublished>,
}

static CATALOG: LazyLock<Catalog> =
    LazyLock::new(|| Catalog::parse(JSON).unwrap_or_else(|e| panic!("schemas/topics.json: {e:#}")));

/// The compiled-in catalog. Its checks run in this module's tests, so a
/// build whose catalog contradicts itself never passes `make test`.
pub fn catalog() -> &'static Catalog {
    &CATALOG
}

impl Catalog {
    /// Parses a catalog and checks that it holds together: every name under
    /// [`DEFAULT_PREFIX`] with its dead-letter topic `<name>.dlq`, one topic
    /// per owner, every event type on exactly one topic, one partition
    /// count and one replication factor (`KAFKA_TOPIC_PARTITIONS` and
    /// `KAFKA_TOPIC_REPLICATION_FACTOR` set all topics' alike), and a
    /// positive retention.
    pub fn parse(json: &str) -> Result<Self> {
        let catalog: Self = serde_json::from_str(json).context("Failed to parse the topic catalog")?;
        ensure!(!catalog.topics.is_empty(), "the catalog has no topics");
        let mut owners = BTreeSet::new();
        let mut types = BTreeSet::new();
        for t in &catalog.topics {
            let name = &t.name;
            ensure!(
                name.starts_with(DEFAULT_PREFIX) && name.len() > DEFAULT_PREFIX.len(),
                "{name} is not named under {DEFAULT_PREFIX:?}"
            );
            ensure!(
                t.dead_letter_topic == dead_letter(name),
                "{name}'s dead-letter topic is {}, not {}",
                t.dead_letter_topic,
                dead_letter(name)
            );
            ensure!(owners.insert(&t.owner), "{} owns two topics", t.owner);
            ensure!(!t.message_types.is_empty(), "{name} carries no message type");
            for m in &t.message_types {
                ensure!(types.insert(m), "{m} is carried by two topics (again on {name})");
            }
            ensure!(t.partitions >= 1, "{name} has {} partitions", t.partitions);
            ensure!(
                t.replication_factor >= 1,
                "{name} has a replication factor of {}",
                t.replication_factor
            );
            ensure!(
                t.retention_ms > 0 && t.dead_letter_retention_ms > 0,
                "{name} keeps nothing"
            );
        }
        for u in &catalog.unpublished {
            let m = &u.message_type;
            ensure!(
                types.insert(m),
                "{m} is unpublished and carried by a topic, or unpublished twice"
            );
        }
        let replicas = catalog.topics[0].replication_factor;
        if let Some(t) = catalog.topics.iter().find(|t| t.replication_factor != replicas) {
            bail!(
                "{} has a replication factor of {} and {} {replicas}: KAFKA_TOPIC_REPLICATION_FACTOR sets every topic's",
                t.name,
                t.replication_factor,
                catalog.topics[0].name
            );
        }
        let partitions = catalog.topics[0].partitions;
        if let Some(t) = catalog.topics.iter().find(|t| t.partitions != partitions) {
            bail!(
                "{} has {} partitions and {} {partitions}: KAFKA_TOPIC_PARTITIONS sets every topic's",
                t.name,
                t.partitions,
                catalog.topics[0].name
            );
        }
        Ok(catalog)
    }

    /// Every topic, in the catalog's order.
    pub fn topics(&self) -> &[Topic] {
        &self.topics
    }

    /// The event types kept by their owner's event store and on no topic.
    pub fn unpublished(&self) -> &[Unpublished] {
        &self.unpublished
    }

    /// The topic `service` publishes on, if it owns one.
    pub fn owned_by(&self, service: &str) -> Option<&Topic> {
        self.topics.iter().find(|t| t.owner == service)
    }

    /// The topic that carries `event_type`, if any.
    pub fn carrying(&self, event_type: &str) -> Option<&Topic> {
        self.topics.iter().find(|t| t.carries(event_type))
    }

    /// True when `event_type` is carried by the topic `service` owns: the
    /// only events `service` may publish.
    pub fn publishes(&self, service: &str, event_type: &str) -> bool {
        self.owned_by(service).is_some_and(|t| t.carries(event_type))
    }

    /// The topics `service` consumes.
    pub fn consumed_by<'a>(&'a self, service: &'a str) -> impl Iterator<Item = &'a Topic> + 'a {
        self.topics.iter().filter(move |t| t.is_consumed_by(service))
    }

    /// Where the catalog and `service`'s code disagree, each as a sentence:
    /// `publishes` are the event types its code publishes, `reacts_to` the
    /// ones its consumers act on (its own among them, if its handlers
    /// match them). Empty when they agree both ways: every type it
    /// publishes is on the topic it owns and that topic carries nothing
    /// else; every type it acts on comes from a topic it consumes (or owns),
    /// and every topic it consumes carries something it acts on.
    pub fn drift(
        &self,
        service: &str,
        publishes: &BTreeSet<String>,
        reacts_to: &BTreeSet<String>,
    ) -> Vec<String> {
        let mut found = Vec::new();
        for t in publishes {
            match self.carrying(t) {
                None => found.push(format!("{service} publishes {t}, which no topic carries")),
                Some(topic) if topic.owner != service => found.push(format!(
                    "{service} publishes {t}, which the catalog puts on {}, owned by {}",
                    topic.name, topic.owner
                )),
                Some(_) => {}
            }
        }
        if let Some(own) = self.owned_by(service) {
            for t in own.message_types.iter().filter(|t| !publishes.contains(*t)) {
                found.push(format!(
                    "{} lists {t}, which its owner {service} never publishes",
                    own.name
                ));
            }
        }
        for t in reacts_to {
            match self.carrying(t) {
                None => found.push(format!("{service} acts on {t}, which no topic carries")),
                Some(topic) if topic.owner != service && !topic.is_consumed_by(service) => {
                    found.push(format!(
                        "{service} acts on {t}, but the catalog does not list it as a consumer of {}",
                        topic.name
                    ))
                }
                Some(_) => {}
            }
        }
        for topic in self.consumed_by(service) {
            if !topic.message_types.iter().any(|t| reacts_to.contains(t)) {
                found.push(format!(
                    "the catalog lists {service} as a consumer of {}, but it acts on none of its types",
                    topic.name
                ));
            }
        }
        found
    }

    /// The partitions every topic is created with, unless
    /// `KAFKA_TOPIC_PARTITIONS` says otherwise ([`Catalog::parse`] checks
    /// they are one number). The catalog says 6: up to six instances of a
    /// consuming service share a topic, and 1, 2, 3 or 6 of them evenly.
    pub fn partitions(&self) -> i32 {
        self.topics[0].partitions
    }

    /// The replication factor every topic is created with, unless
    /// `KAFKA_TOPIC_REPLICATION_FACTOR` says otherwise (one number, checked
    /// by [`Catalog::parse`]).
    pub fn replication_factor(&self) -> i32 {
        self.topics[0].replication_factor
    }
}

/// `min.insync.replicas` for a topic of `replication_factor` replicas: one
/// fewer than the replicas, at least 1 and at most 2, so with the
/// producers' `acks=all` a write survives the loss of a broker and a
/// three-broker cluster keeps taking writes with one broker down.
pub fn min_insync_replicas(replication_factor: i32) -> i32 {
    (replication_factor - 1).clamp(1, 2)
}

#[cfg(test)]
mod tests;
