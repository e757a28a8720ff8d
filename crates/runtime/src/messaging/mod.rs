//! Messaging: the Kafka clients and settings, the outbox relay that
//! publishes what the core wrote, the consumer loop with its inbox and dead
//! letters, the broker probe and the consumers' progress. It stands on
//! [`crate::es`], [`crate::work`] and [`crate::base`], and knows nothing of
//! HTTP.

pub mod consumer;
pub mod kafka;
pub mod probe;
pub mod progress;
pub mod relay;
