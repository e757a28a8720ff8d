//! Events from outside a service under test: what another service would have
//! published, put on the test broker so the service's own consumer takes it,
//! as it would in the saga.

use anyhow::{Context, Result};
use chrono::Utc;
use prost::Message;

use crate::{
    es::event::{self, EventMeta},
    messaging::kafka,
    messaging::kafka::KafkaConfig,
    pb::{envelope::Payload, Envelope},
};

/// A new envelope around `payload` for `order_id`, as `producer` would
/// write it now, with no cause (the first event of a test's story).
pub fn envelope(producer: &str, order_id: &str, payload: Payload) -> Envelope {
    event::envelope(producer, order_id, payload, &EventMeta::default(), Utc::now())
}

/// Publishes `envelope` to `topic` (the prefixed name, from
/// `KafkaConfig::topics`), keyed by its order as the relay keys it, and
/// returns once the broker acknowledged it.
pub async fn publish(kafka: &KafkaConfig, topic: &str, envelope: &Envelope) -> Result<()> {
    let producer = kafka::producer(kafka, "test")?;
    producer
        .send(topic, &envelope.order_id, &envelope.encode_to_vec(), None)
        .with_context(|| format!("Failed to queue {} for {topic}", envelope.event_type))?
        .await
        .with_context(|| format!("{topic} did not take {}", envelope.event_type))?;
    Ok(())
}
