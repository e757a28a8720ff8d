//! Kafka clients with the settings the guarantees depend on: an idempotent
//! producer with `acks=all`, consumers that store offsets only after the
//! handler committed, and explicit topic creation.

use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::{ClientContext, DefaultClientContext},
    consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer},
    error::{KafkaError, KafkaResult},
    types::RDKafkaErrorCode,
    ClientConfig, TopicPartitionList,
};

use crate::catalog::catalog;

mod producer;
mod settings;

pub use producer::{producer, Delivered, Deliveries, Producer, ProducerHealth};
pub use settings::{Fetch, KafkaConfig, Topics};

/// The settings every client of a service starts from: the brokers, its
/// login and TLS, and the socket options.
pub fn base(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    // Nagle's algorithm would hold a small request back until the previous
    // one is acknowledged: up to 40 ms on a hop that should take one.
    c.set("bootstrap.servers", &kafka.brokers)
        .set("broker.address.family", "v4")
        .set("socket.nagle.disable", "true")
        .set("socket.keepalive.enable", "true");
    for (key, value) in kafka.security.settings() {
        c.set(key, value);
    }
    c
}

/// A service's consumer of its group: see [`consumer`].
pub type GroupConsumer = StreamConsumer<Rebalances>;

/// A consumer in `group` that never stores an offset by itself.
///
/// Instances of a service share their group's partitions by cooperative
/// sticky assignment: when one joins or leaves, only the partitions that
/// move are revoked, and the others keep consuming through the rebalance.
/// Offsets are stored only once a batch is handled; when partitions are
/// revoked, what was stored is committed before they go ([`Rebalances`]),
/// so their next owner starts where this one stopped rather than up to one
/// auto-commit interval earlier.
pub fn consumer(kafka: &KafkaConfig, group: &str) -> Result<GroupConsumer> {
    base(kafka)
        .set("group.id", group)
        .set("group.protocol", "classic")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "500")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set("fetch.wait.max.ms", kafka.fetch_wait_max_ms.to_string())
        .set("fetch.min.bytes", kafka.fetch_min_bytes.to_string())
        .create_with_context(Rebalances {
            group: group.to_owned(),
        })
        .context("Failed to create the Kafka consumer")
}

/// A group consumer's rebalance callbacks: commits the stored offsets of
/// partitions being revoked, and logs what moved.
///
/// A [`StreamConsumer`] serves rebalances inside `recv`, and the consumer
/// loop calls it only between batches, after storing the last batch's
/// offsets: so what is committed here is everything handled. A record
/// fetched together with the revocation is still handled, its offset no
/// longer stored; its partition's next owner gets it again, and the inbox
/// drops it (waiting, if the first transaction has not committed yet, so
/// the order of an order's events holds across the move).
pub struct Rebalances {
    group: String,
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(partitions) => {
                self.moved("revoked", partitions);
                match consumer.commit_consumer_state(CommitMode::Sync) {
                    Ok(()) => {}
                    // Nothing handled since the last commit.
                    Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                    Err(e) => {
                        tracing::warn!(group = %self.group, error = %e, "offsets not committed on revoke")
                    }
                }
            }
            Rebalance::Assign(partitions) => self.moved("assigned", partitions),
            Rebalance::Error(e) => tracing::warn!(group = %self.group, error = %e, "rebalance failed"),
        }
    }
}

impl Rebalances {
    /// Logs `partitions {change}` with the partitions, and counts them.
    fn moved(&self, change: &str, partitions: &TopicPartitionList) {
        tracing::info!(group = %self.group, partitions = %listed(partitions), "partitions {change}");
        crate::base::metrics::get()
            .consumer_rebalances
            .with_label_values(&[change])
            .inc_by(partitions.count() as u64);
    }
}

/// `topic[0,1,2] other[4]`, for the log.
fn listed(partitions: &TopicPartitionList) -> String {
    let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
    for e in partitions.elements() {
        by_topic
            .entry(e.topic().to_owned())
            .or_default()
            .push(e.partition());
    }
    by_topic
        .iter()
        .map(|(t, ps)| format!("{t}{ps:?}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Creates every topic of the catalog and its dead-letter topic, with the
/// catalog's retention (`schemas/topics.json`: 7 days for a business topic,
/// long enough to replay a week into a new consumer or a rebuilt
/// projection; 28 for a dead-letter topic, so a parked record outlives a
/// long weekend and its investigation) and `kafka.topic_partitions`
/// partitions; topics that already exist are left as they are. For a
/// client that may create topics: the broker's admin, or any client of a
/// broker without ACLs.
pub async fn ensure_topics(kafka: &KafkaConfig) -> Result<()> {
    let all = catalog().topics().iter().flat_map(|t| {
        [
            t.name(&kafka.topic_prefix),
            t.dead_letter_name(&kafka.topic_prefix),
        ]
    });
    create_topics(kafka, all.collect()).await
}

/// How long a service looks for topics it cannot create before it says
/// they are missing.
const TOPICS_VISIBLE_WITHIN: Duration = Duration::from_secs(30);

/// Creates what `service` uses and the broker lacks: the topic it owns and
/// its dead-letter topic, the topics it consumes and their dead-letter
/// topics (where it parks). Where ACLs hold (`omnisaga kafka provision`) a
/// service may not create topics and finds them made; one it needs but
/// cannot see is an error that says so, so a service never waits on a topic
/// nobody will create.
pub async fn ensure_service_topics(kafka: &KafkaConfig, service: &str) -> Result<()> {
    let prefix = &kafka.topic_prefix;
    let mut needed: Vec<String> = Vec::new();
    let mut optional: Vec<String> = Vec::new();
    if let Some(own) = catalog().owned_by(service) {
        needed.push(own.name(prefix));
        // Written by its consumers, not by the owner: made here only so that
        // it exists where nobody provisions topics.
        optional.push(own.dead_letter_name(prefix));
    }
    for t in catalog().consumed_by(service) {
        needed.push(t.name(prefix));
        needed.push(t.dead_letter_name(prefix));
    }
    // Topics and ACLs just provisioned reach the broker's metadata a little
    // later, longer on a busy broker: a service started right after the
    // provisioning looks again for a while before it calls them missing.
    let deadline = tokio::time::Instant::now() + TOPICS_VISIBLE_WITHIN;
    let optional = loop {
        let existing = existing_topics(kafka).await?;
        let missing = |names: &[String]| -> Vec<String> {
            names.iter().filter(|n| !existing.contains(*n)).cloned().collect()
        };
        let lacking = missing(&needed);
        if lacking.is_empty() {
            break missing(&optional);
        }
        match create_topics(kafka, lacking.clone()).await {
            Ok(()) => break missing(&optional),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %format!("{e:#}"), topics = ?lacking, "topics not visible yet; looking again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "{service} lacks topics it uses and could not create them; where the broker has \
                         ACLs, create topics and users first as its admin (`omnisaga kafka provision`)"
                    )
                })
            }
        }
    };
    if !optional.is_empty() {
        if let Err(e) = create_topics(kafka, optional).await {
            tracing::debug!(error = %format!("{e:#}"), "not creating a topic this service does not use");
        }
    }
    Ok(())
}

/// The names of the topics the broker shows this client (under ACLs, those
/// it may describe), waiting for a broker that is still starting.
async fn existing_topics(kafka: &KafkaConfig) -> Result<std::collections::HashSet<String>> {
    let config = base(kafka);
    let mut delay = Duration::from_millis(200);
    for attempt in 0.. {
        let config = config.clone();
        let fetched = tokio::task::spawn_blocking(move || -> KafkaResult<Vec<String>> {
            use rdkafka::consumer::Consumer as _;
            let client: rdkafka::consumer::BaseConsumer = config.create()?;
            let metadata = client.fetch_metadata(None, Duration::from_secs(10))?;
            Ok(metadata.topics().iter().map(|t| t.name().to_owned()).collect())
        })
        .await?;
        match fetched {
            Ok(names) => return Ok(names.into_iter().collect()),
            Err(e) if attempt < 15 => {
                tracing::warn!(error = %e, "broker not reachable yet, retrying its topic list");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e).context("Failed to list the broker's topics"),
        }
    }
    unreachable!()
}

/// Creates `names` with the catalog's retention for each (a dead-letter
/// topic's for `<topic>.dlq`); existing ones stay as they are.
async fn create_topics(kafka: &KafkaConfig, names: Vec<String>) -> Result<()> {
    let retention = |name: &str| {
        catalog()
            .topics()
            .iter()
            .find_map(|t| {
                if t.name(&kafka.topic_prefix) == name {
                    Some(t.retention_ms)
                } else if t.dead_letter_name(&kafka.topic_prefix) == name {
                    Some(t.dead_letter_retention_ms)
                } else {
                    None
                }
            })
            .map(|ms| ms.to_string())
    };
    let new: Vec<(String, Option<String>)> = names
        .into_iter()
        .map(|name| {
            let ms = retention(&name);
            (name, ms)
        })
        .collect();
    let min_insync = crate::catalog::min_insync_replicas(kafka.topic_replication_factor).to_string();
    let new: Vec<NewTopic> = new
        .iter()
        .map(|(name, retention)| {
            let topic = NewTopic::new(
                name,
                kafka.topic_partitions,
                TopicReplication::Fixed(kafka.topic_replication_factor),
            )
            .set("min.insync.replicas", &min_insync);
            match retention {
                Some(ms) => topic.set("retention.ms", ms),
                None => topic,
            }
        })
        .collect();
    let admin: AdminClient<DefaultClientContext> = base(kafka)
        .create()
        .context("Failed to create the Kafka admin client")?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let mut delay = Duration::from_millis(200);
    for attempt in 0.. {
        match admin.create_topics(&new, &opts).await {
            Ok(results) => {
                for r in results {
                    match r {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((name, code)) => anyhow::bail!("Failed to create topic {name}: {code}"),
                    }
                }
                return Ok(());
            }
            Err(e) if attempt < 15 => {
                tracing::warn!(error = %e, "broker not reachable yet, retrying topic creation");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e).context("Failed to create topics"),
        }
    }
    unreachable!()
}
