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
    match var(name) {
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
    pub fetch_wait_max_ms: u32,
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

impl CommonConfig {
    /// Reads the common variables; `default_port` is the service's usual HTTP port.
    pub fn from_env(service: &'static str, default_port: u16) -> Result<Self> {
        let database_url = var("DATABASE_URL").context("DATABASE_URL is not set")?;
        Ok(Self {
            service,
            database_url,
            database_max_connections: parse_or("DATABASE_MAX_CONNECTIONS", 10)?,
            kafka: KafkaConfig {
                brokers: var("KAFKA_BROKERS").unwrap_or_else(|| "127.0.0.1:9092".into()),
                topic_prefix: var("KAFKA_TOPIC_PREFIX").unwrap_or_else(|| "omnisaga.".into()),
                fetch_wait_max_ms: parse_or("KAFKA_FETCH_WAIT_MAX_MS", 20)?,
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
