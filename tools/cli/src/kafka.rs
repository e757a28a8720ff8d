//! The broker as the CLI reads it: topic names resolved against the
//! catalog, partitions and watermarks, and consumers that never join a
//! group or commit.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use omnisaga_catalog::{catalog, DEAD_LETTER_SUFFIX};

use crate::settings::Settings;
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    error::RDKafkaErrorCode,
    ClientConfig,
};

/// How long a metadata or offsets request may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The full name of `topic`: a catalog name (`orders`, `orders.v1`, either
/// with `.dlq`) gets `prefix`; anything else is taken as the full name.
pub fn resolve(topic: &str, prefix: &str) -> String {
    let (base, dlq) = match topic.strip_suffix(DEAD_LETTER_SUFFIX) {
        Some(base) => (base, DEAD_LETTER_SUFFIX),
        None => (topic, ""),
    };
    catalog()
        .topics()
        .iter()
        .find(|t| {
            let name = t.base_name();
            name == base || name.split('.').next() == Some(base)
        })
        .map_or_else(|| topic.to_owned(), |t| format!("{}{dlq}", t.name(prefix)))
}

/// A client config for the broker of `settings`, logged in as they say,
/// under consumer group `group`, which it never joins (partitions are
/// assigned) and never commits to.
pub fn config(settings: &Settings, group: &str) -> Result<ClientConfig> {
    let mut config = ClientConfig::new();
    for (key, value) in settings.kafka_security()?.settings() {
        config.set(key, value);
    }
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("socket.timeout.ms", "10000")
        .set("log_level", "3");
    Ok(config)
}

/// A consumer for metadata, watermarks and committed offsets of `group`.
pub fn base_consumer(settings: &Settings, group: &str) -> Result<BaseConsumer> {
    config(settings, group)?
        .create()
        .with_context(|| format!("Failed to create a Kafka client for {}", settings.brokers))
}

/// The partitions of `topic`; an error when the broker does not have it.
pub fn partitions(consumer: &impl Consumer, topic: &str) -> Result<Vec<i32>> {
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT).with_context(|| {
        format!("Failed to read the metadata of {topic} (is the broker up? set KAFKA_BROKERS)")
    })?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        bail!("the broker has no topic {topic}");
    };
    let missing = t
        .error()
        .is_some_and(|e| RDKafkaErrorCode::from(e) == RDKafkaErrorCode::UnknownTopicOrPartition);
    if missing || t.partitions().is_empty() {
        bail!("the broker has no topic {topic} (check the name and KAFKA_TOPIC_PREFIX)");
    }
    if let Some(e) = t.error() {
        bail!(
            "the broker cannot serve topic {topic}: {}",
            RDKafkaErrorCode::from(e)
        );
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

/// The low and high watermarks of one partition.
pub fn watermarks(consumer: &impl Consumer, topic: &str, partition: i32) -> Result<(i64, i64)> {
    consumer
        .fetch_watermarks(topic, partition, TIMEOUT)
        .with_context(|| format!("Failed to read the offsets of {topic}[{partition}]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_names_get_the_prefix_and_full_names_stay() {
        assert_eq!(resolve("orders", "p."), "p.orders.v1");
        assert_eq!(resolve("orders.v1", "omnisaga."), "omnisaga.orders.v1");
        assert_eq!(resolve("payments.dlq", "p."), "p.payments.v1.dlq");
        assert_eq!(resolve("p.orders.v1", "p."), "p.orders.v1");
        assert_eq!(resolve("something.else", "p."), "something.else");
    }
}
