//! Kafka clients with the settings the guarantees depend on: an idempotent
//! producer with `acks=all`, consumers that store offsets only after the
//! handler committed, and explicit topic creation.

use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::StreamConsumer,
    producer::FutureProducer,
    types::RDKafkaErrorCode,
    ClientConfig,
};

use crate::config::{KafkaConfig, Topics};

fn base(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    // Nagle's algorithm would hold a small request back until the previous
    // one is acknowledged: up to 40 ms on a hop that should take one.
    c.set("bootstrap.servers", brokers)
        .set("broker.address.family", "v4")
        .set("socket.nagle.disable", "true")
        .set("socket.keepalive.enable", "true");
    c
}

/// The idempotent producer the outbox relay publishes with.
pub fn producer(kafka: &KafkaConfig, client_id: &str) -> Result<FutureProducer> {
    base(&kafka.brokers)
        .set("client.id", client_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", "30000")
        .create()
        .context("Failed to create the Kafka producer")
}

/// A consumer in `group` that never stores an offset by itself.
pub fn consumer(kafka: &KafkaConfig, group: &str) -> Result<StreamConsumer> {
    base(&kafka.brokers)
        .set("group.id", group)
        .set("group.protocol", "classic")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "500")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set("fetch.wait.max.ms", kafka.fetch_wait_max_ms.to_string())
        .set("fetch.min.bytes", kafka.fetch_min_bytes.to_string())
        .create()
        .context("Failed to create the Kafka consumer")
}

/// How long a business topic keeps its records: 7 days, long enough to
/// replay a week into a new consumer or a rebuilt projection.
pub const RETENTION_MS: &str = "604800000";
/// How long a dead-letter topic keeps its records: 28 days, so a parked
/// record outlives a long weekend and its investigation.
pub const DEAD_LETTER_RETENTION_MS: &str = "2419200000";

/// Creates every business topic and its dead-letter topic, with the
/// retention above; topics that already exist are left as they are.
pub async fn ensure_topics(kafka: &KafkaConfig) -> Result<()> {
    let topics = kafka.topics();
    let mut names: Vec<String> = Vec::new();
    for t in topics.all() {
        names.push(t.to_owned());
        names.push(Topics::dead_letter(t));
    }
    let admin: AdminClient<DefaultClientContext> = base(&kafka.brokers)
        .create()
        .context("Failed to create the Kafka admin client")?;
    let new: Vec<NewTopic> = names
        .iter()
        .map(|n| {
            let retention = if n.ends_with(".dlq") {
                DEAD_LETTER_RETENTION_MS
            } else {
                RETENTION_MS
            };
            NewTopic::new(n, kafka.topic_partitions, TopicReplication::Fixed(1))
                .set("retention.ms", retention)
        })
        .collect();
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
