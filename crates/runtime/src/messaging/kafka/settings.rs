//! A service's Kafka settings: the broker and its security, the topics'
//! prefix and how topics the service creates are made, and how its
//! consumers fetch; and the names of the saga's topics under the prefix.
//! `crate::boot::cli` reads them from the environment.

use crate::catalog::{self, catalog, client::ClientSecurity};

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topic_prefix: String,
    /// Longest a fetch waits at the broker for `fetch_min_bytes`
    /// (`KAFKA_FETCH_WAIT_MAX_MS`; the default follows the service's [`Fetch`]).
    pub fetch_wait_max_ms: u32,
    /// Bytes a fetch waits for before it answers (`KAFKA_FETCH_MIN_BYTES`;
    /// the default follows the service's [`Fetch`]).
    pub fetch_min_bytes: u32,
    /// Partitions of each topic the service creates when it is missing
    /// (`KAFKA_TOPIC_PARTITIONS`, default the catalog's, 6); existing topics keep theirs
    /// (add partitions with Kafka's tools, knowing that keys then move).
    pub topic_partitions: i32,
    /// Replicas of each partition of a topic the service creates
    /// (`KAFKA_TOPIC_REPLICATION_FACTOR`, default the catalog's, 1: a
    /// development broker; 3 on a cluster), with `min.insync.replicas` one
    /// fewer (at least 1, at most 2).
    pub topic_replication_factor: i32,
    /// SASL user and TLS (`KAFKA_SECURITY_PROTOCOL`, `KAFKA_USERNAME`,
    /// `KAFKA_PASSWORD`, `KAFKA_SSL_CA_FILE`; see [`ClientSecurity`]).
    pub security: ClientSecurity,
}

impl KafkaConfig {
    pub fn topics(&self) -> Topics {
        Topics::new(&self.topic_prefix)
    }
}

/// How a service's consumers fetch: what its fetch settings default to.
///
/// Kafka answers a waiting fetch as soon as it holds `fetch.min.bytes`, so
/// with 1 byte every record travels alone: the lowest latency, and one
/// transaction per record for the consumer. Only the saga's steps need
/// that; the others take what a short wait gathers and apply it in one
/// transaction. Measured at 30 orders/s (README, Performance): the
/// followers' records in bunches cut the saga's p50 from 143 to 29 ms and
/// the CPU per order by 15%, because they stop competing with the saga's
/// steps for the two cores and the database on every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// A saga step (order, payment, warehouse): a fetch answers on the first
    /// record; an idle one returns after 500 ms.
    Prompt,
    /// Nothing waits on this service (notification, analytics): a fetch
    /// answers when 1 MB is there or 100 ms have passed, so a customer
    /// message or an analytics row comes at most about 100 ms later.
    Batched,
}

impl Fetch {
    /// `(fetch wait in ms, fetch minimum bytes)` when unset
    /// (`KAFKA_FETCH_WAIT_MAX_MS`, `KAFKA_FETCH_MIN_BYTES`).
    pub fn defaults(self) -> (u32, u32) {
        match self {
            Self::Prompt => (500, 1),
            Self::Batched => (100, 1_000_000),
        }
    }
}

/// Names of the saga's topics under one prefix, from the topic catalog
/// ([`crate::catalog`]): each service owns one topic, and every topic has a
/// dead-letter topic named `<topic>.dlq`.
#[derive(Debug, Clone)]
pub struct Topics {
    pub orders: String,
    pub payments: String,
    pub warehouse: String,
    pub notifications: String,
    prefix: String,
}

impl Topics {
    pub fn new(prefix: &str) -> Self {
        Self {
            orders: Self::owned_by("order", prefix),
            payments: Self::owned_by("payment", prefix),
            warehouse: Self::owned_by("warehouse", prefix),
            notifications: Self::owned_by("notification", prefix),
            prefix: prefix.to_owned(),
        }
    }

    /// The name of `service`'s topic under `prefix`. The catalog's tests
    /// hold the four owners above, so a missing one is a broken build.
    fn owned_by(service: &str, prefix: &str) -> String {
        catalog()
            .owned_by(service)
            .unwrap_or_else(|| panic!("schemas/topics.json has no topic owned by {service}"))
            .name(prefix)
    }

    /// Every business topic, in the catalog's order.
    pub fn all(&self) -> Vec<String> {
        catalog().topics().iter().map(|t| t.name(&self.prefix)).collect()
    }

    /// The topics the catalog lists `service` as a consumer of: what its
    /// consumer subscribes to.
    pub fn consumed_by(&self, service: &str) -> Vec<String> {
        catalog()
            .consumed_by(service)
            .map(|t| t.name(&self.prefix))
            .collect()
    }

    pub fn dead_letter(topic: &str) -> String {
        catalog::dead_letter(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saga_step_fetches_each_record_at_once_and_a_follower_gathers() {
        assert_eq!(Fetch::Prompt.defaults(), (500, 1));
        let (wait, min_bytes) = Fetch::Batched.defaults();
        assert!(min_bytes > 1 && wait < 500, "{wait} ms, {min_bytes} B");
    }

    #[test]
    fn topics_are_the_catalogs_under_the_prefix() {
        let topics = Topics::new("omnisaga.");
        assert_eq!(
            topics.all(),
            [
                "omnisaga.orders.v1",
                "omnisaga.payments.v1",
                "omnisaga.warehouse.v1",
                "omnisaga.notifications.v1"
            ]
        );
        let t = Topics::new("t1.");
        assert_eq!(
            [t.orders.as_str(), &t.payments, &t.warehouse, &t.notifications],
            [
                "t1.orders.v1",
                "t1.payments.v1",
                "t1.warehouse.v1",
                "t1.notifications.v1"
            ]
        );
        assert_eq!(Topics::dead_letter(&t.orders), "t1.orders.v1.dlq");
        assert_eq!(t.consumed_by("order"), ["t1.payments.v1", "t1.warehouse.v1"]);
        assert_eq!(t.consumed_by("notification").len(), 3);
    }
}
