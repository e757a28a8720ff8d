//! Typed configuration shared by every service, read once from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | (required) | the service's own PostgreSQL database |
//! | `DATABASE_MAX_CONNECTIONS` | `10` | pool size |
//! | `KAFKA_BROKERS` | `127.0.0.1:9092` | bootstrap servers |
//! | `KAFKA_TOPIC_PREFIX` | `omnisaga.` | prefix of every topic name |
//! | `HTTP_ADDR` | per service | listen address of the HTTP API |
//! | `OUTBOX_POLL_MS` | `500` | relay poll interval when nothing woke it |
//! | `KAFKA_FETCH_WAIT_MAX_MS` | `20`, `250` for followers | longest a fetch waits at the broker (see [`Urgency`]) |
//! | `KAFKA_FETCH_MIN_BYTES` | `1` | bytes a fetch waits for before it answers |
//! | `KAFKA_GROUP_SUFFIX` | empty | appended to consumer group ids (a new suffix re-reads every topic from the start; the inbox keeps it harmless) |
//! | `LOG_FORMAT` | `json` | `json` or `pretty` |
//! | `RUST_LOG` | `info` | log filter |
//!
//! A value may also come from a file: `NAME_FILE=/path` reads `NAME` from it
//! (for secrets such as a database URL with a password).

use std::{net::SocketAddr, str::FromStr, time::Duration};

use anyhow::{Context, Result};

/// Reads `name`, or the contents of the file named by `name_FILE`.
pub fn var(name: &str) -> Option<String> {
    if let Ok(v) = std::env::var(name) {
        return Some(v);
    }
    let path = std::env::var(format!("{name}_FILE")).ok()?;
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// Reads and parses `name`, falling back to `default` when unset.
pub fn parse_or<T: FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    parse_value(name, var(name), default)
}

/// Parses `value` of variable `name`, `default` when it is unset.
fn parse_value<T: FromStr>(name: &str, value: Option<String>, default: T) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    match value {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}={v:?} is invalid: {e}")),
    }
}

/// Settings every service has.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub service: &'static str,
    pub database_url: String,
    pub database_max_connections: u32,
    pub kafka: KafkaConfig,
    pub http_addr: SocketAddr,
    pub outbox_poll: Duration,
    /// Appended to consumer group ids (`KAFKA_GROUP_SUFFIX`), e.g. to replay topics from the start.
    pub group_suffix: String,
    /// Most records a consumer applies in one transaction (`CONSUMER_BATCH_MAX`).
    pub consumer_batch_max: usize,
}

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topic_prefix: String,
    /// Longest a fetch waits at the broker for new records
    /// (`KAFKA_FETCH_WAIT_MAX_MS`). Nisshi looks for new records at halving
    /// intervals of this wait rather than being woken by a produce, so it
    /// bounds every hop's latency; Apache Kafka answers at once and takes 500.
    /// The default follows the service's [`Urgency`].
    pub fetch_wait_max_ms: u32,
    /// Bytes a fetch waits for before it answers (`KAFKA_FETCH_MIN_BYTES`,
    /// default 1: it answers as soon as a record is there).
    pub fetch_min_bytes: u32,
    /// Partitions of each topic the service creates when it is missing
    /// (`KAFKA_TOPIC_PARTITIONS`, default 3). Nisshi cannot add partitions
    /// later; existing topics keep theirs.
    pub topic_partitions: i32,
}

impl KafkaConfig {
    pub fn topics(&self) -> Topics {
        Topics::new(&self.topic_prefix)
    }
}

/// How soon a service's consumers must see a new record; it sets the
/// default fetch wait.
///
/// Every fetch Nisshi holds re-reads each of its partitions at halving
/// intervals of the fetch wait, whether a record came or not, so a short wait
/// costs the broker CPU on every consumer all the time. Only the consumers a
/// saga step waits on pay for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// The saga waits on this service (order, payment, warehouse): a fetch
    /// answers as soon as a record is there and waits at most 20 ms.
    SagaStep,
    /// Nothing waits on this service (notification, analytics): a fetch
    /// waits up to 250 ms, so a customer message or an analytics row comes
    /// at most that much later.
    Follower,
}

impl Urgency {
    /// `(fetch wait in ms, fetch minimum bytes)` from the values of
    /// `KAFKA_FETCH_WAIT_MAX_MS` (defaulting by urgency when unset) and
    /// `KAFKA_FETCH_MIN_BYTES` (default 1).
    pub fn fetch_settings(self, wait: Option<String>, min_bytes: Option<String>) -> Result<(u32, u32)> {
        let default_wait = match self {
            Self::SagaStep => SAGA_STEP_FETCH_WAIT_MS,
            Self::Follower => FOLLOWER_FETCH_WAIT_MS,
        };
        let wait = parse_value("KAFKA_FETCH_WAIT_MAX_MS", wait, default_wait)?;
        let min_bytes = parse_value("KAFKA_FETCH_MIN_BYTES", min_bytes, 1)?;
        if min_bytes == 0 {
            anyhow::bail!("KAFKA_FETCH_MIN_BYTES=0 is invalid: a fetch needs at least 1 byte");
        }
        Ok((wait, min_bytes))
    }
}

const SAGA_STEP_FETCH_WAIT_MS: u32 = 20;
const FOLLOWER_FETCH_WAIT_MS: u32 = 250;

impl CommonConfig {
    /// Reads the common variables of a saga step; `default_port` is the
    /// service's usual HTTP port.
    pub fn from_env(service: &'static str, default_port: u16) -> Result<Self> {
        Self::from_env_for(service, default_port, Urgency::SagaStep)
    }

    /// Reads the common variables, with fetch defaults for `urgency`.
    pub fn from_env_for(service: &'static str, default_port: u16, urgency: Urgency) -> Result<Self> {
        let (fetch_wait_max_ms, fetch_min_bytes) =
            urgency.fetch_settings(var("KAFKA_FETCH_WAIT_MAX_MS"), var("KAFKA_FETCH_MIN_BYTES"))?;
        let database_url = var("DATABASE_URL").context("DATABASE_URL is not set")?;
        Ok(Self {
            service,
            database_url,
            database_max_connections: parse_or("DATABASE_MAX_CONNECTIONS", 10)?,
            kafka: KafkaConfig {
                brokers: var("KAFKA_BROKERS").unwrap_or_else(|| "127.0.0.1:9092".into()),
                topic_prefix: var("KAFKA_TOPIC_PREFIX").unwrap_or_else(|| "omnisaga.".into()),
                fetch_wait_max_ms,
                fetch_min_bytes,
                topic_partitions: parse_or("KAFKA_TOPIC_PARTITIONS", PARTITIONS)?.max(1),
            },
            http_addr: parse_or("HTTP_ADDR", SocketAddr::from(([127, 0, 0, 1], default_port)))?,
            outbox_poll: Duration::from_millis(parse_or("OUTBOX_POLL_MS", 500)?),
            group_suffix: var("KAFKA_GROUP_SUFFIX").unwrap_or_default(),
            consumer_batch_max: parse_or("CONSUMER_BATCH_MAX", 64)?.max(1),
        })
    }
}

/// Names of the saga's topics under one prefix. Each service owns one topic;
/// every topic has a dead-letter topic named `<topic>.dlq`.
#[derive(Debug, Clone)]
pub struct Topics {
    pub orders: String,
    pub payments: String,
    pub warehouse: String,
    pub notifications: String,
}

impl Topics {
    pub fn new(prefix: &str) -> Self {
        Self {
            orders: format!("{prefix}orders.v1"),
            payments: format!("{prefix}payments.v1"),
            warehouse: format!("{prefix}warehouse.v1"),
            notifications: format!("{prefix}notifications.v1"),
        }
    }

    /// Every business topic.
    pub fn all(&self) -> [&str; 4] {
        [&self.orders, &self.payments, &self.warehouse, &self.notifications]
    }

    pub fn dead_letter(topic: &str) -> String {
        format!("{topic}.dlq")
    }
}

/// Default partitions of every business topic (Nisshi cannot add partitions later).
pub const PARTITIONS: i32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followers_let_records_gather_longer_than_saga_steps() {
        let (step, _) = Urgency::SagaStep.fetch_settings(None, None).unwrap();
        let (follower, min_bytes) = Urgency::Follower.fetch_settings(None, None).unwrap();
        assert!(follower > step, "{follower} ms against {step} ms");
        assert_eq!(min_bytes, 1, "a fetch answers as soon as a record is there");
    }

    #[test]
    fn the_environment_overrides_the_fetch_defaults() {
        let set = |v: &str| Some(v.to_owned());
        assert_eq!(
            Urgency::Follower.fetch_settings(set("20"), set("4096")).unwrap(),
            (20, 4096)
        );
        assert_eq!(Urgency::SagaStep.fetch_settings(set("500"), None).unwrap().0, 500);
    }

    #[test]
    fn bad_fetch_settings_are_refused_by_name() {
        let set = |v: &str| Some(v.to_owned());
        let err = Urgency::SagaStep.fetch_settings(set("soon"), None).unwrap_err();
        assert!(
            err.to_string().contains("KAFKA_FETCH_WAIT_MAX_MS=\"soon\""),
            "{err}"
        );
        let err = Urgency::SagaStep.fetch_settings(None, set("0")).unwrap_err();
        assert!(err.to_string().contains("KAFKA_FETCH_MIN_BYTES"), "{err}");
        assert!(Urgency::SagaStep.fetch_settings(None, set("-1")).is_err());
    }
}
