//! Typed configuration shared by every service, read once from the environment.
//!
//! Each setting is a clap argument with its environment variable, default
//! and meaning ([`crate::cli::CommonArgs`], and each service's own
//! `config.rs`); `<service> --help` lists them and docs/configuration.md is
//! generated from them.
//!
//! A value may also come from a file: `NAME_FILE=/path` reads `NAME` from it
//! (for secrets such as a database URL with a password); a file that cannot
//! be read is an error, never an unset variable.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, Result};

use crate::catalog::{self, catalog, client::ClientSecurity};

/// Reads `name`, or the contents of the file named by `name_FILE` (trimmed).
/// A file named but unreadable is an error naming both: a secret that did
/// not mount never passes for an unset variable.
pub fn var(name: &str) -> Result<Option<String>> {
    if let Ok(v) = std::env::var(name) {
        return Ok(Some(v));
    }
    read_file_var(name, std::env::var(format!("{name}_FILE")).ok())
}

fn read_file_var(name: &str, path: Option<String>) -> Result<Option<String>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("{name}_FILE={path:?} cannot be read"))?;
    Ok(Some(text.trim().to_owned()))
}

/// Settings every service has. `Debug` shows them with the database
/// password redacted.
#[derive(Clone)]
pub struct CommonConfig {
    pub service: &'static str,
    pub database_url: String,
    /// The database as its owner, for the migrations (`DATABASE_MIGRATION_URL`).
    pub database_migration_url: Option<String>,
    pub database_max_connections: u32,
    /// Statement and idle-in-transaction timeouts of every connection
    /// (`DATABASE_STATEMENT_TIMEOUT_MS`, `DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS`).
    pub database_timeouts: crate::db::Timeouts,
    pub kafka: KafkaConfig,
    pub http_addr: SocketAddr,
    /// The internal and admin routes' listener (`ADMIN_HTTP_ADDR`).
    pub admin_http_addr: SocketAddr,
    pub outbox_poll: Duration,
    /// Appended to consumer group ids (`KAFKA_GROUP_SUFFIX`), e.g. to replay topics from the start.
    pub group_suffix: String,
    /// Most records a consumer applies in one transaction (`CONSUMER_BATCH_MAX`).
    pub consumer_batch_max: usize,
    /// How long the inbox remembers an applied event, to know a redelivery
    /// of it (`INBOX_RETENTION_HOURS`; by default the longest a record can
    /// come back: the retention of the topics the service consumes or their
    /// dead-letter topics, plus a day).
    pub inbox_retention: Duration,
    /// How bearer tokens are checked (`AUTH_JWKS`, `AUTH_ISSUER`, `AUTH_AUDIENCE`).
    pub auth: AuthConfig,
    /// Rate limit, requests at once and deadline of the HTTP API (`HTTP_*`).
    pub limits: crate::limits::Limits,
    /// HTTPS instead of HTTP (`TLS_CERT_FILE`, `TLS_KEY_FILE`).
    pub tls: Option<crate::tls::TlsFiles>,
    /// The CAs outbound HTTPS calls trust: the system's and `TLS_CA_FILE`'s.
    pub http_trust: crate::http_client::Trust,
    /// Header read timeout, connections at once and their age (`HTTP_*`).
    pub server: crate::server::Settings,
    /// Longest a graceful stop takes from SIGTERM (`SHUTDOWN_GRACE_MS`):
    /// what is not finished by then is handed back (`Base::run`).
    pub shutdown_grace: Duration,
}

impl std::fmt::Debug for CommonConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommonConfig")
            .field("service", &self.service)
            .field("database_url", &redact_url(&self.database_url))
            .field(
                "database_migration_url",
                &self.database_migration_url.as_deref().map(redact_url),
            )
            .field("database_max_connections", &self.database_max_connections)
            .field("database_timeouts", &self.database_timeouts)
            .field("kafka", &self.kafka)
            .field("http_addr", &self.http_addr)
            .field("admin_http_addr", &self.admin_http_addr)
            .field("outbox_poll", &self.outbox_poll)
            .field("group_suffix", &self.group_suffix)
            .field("consumer_batch_max", &self.consumer_batch_max)
            .field("inbox_retention", &self.inbox_retention)
            .field("auth", &self.auth)
            .field("limits", &self.limits)
            .field("tls", &self.tls)
            .field("http_trust", &self.http_trust)
            .field("server", &self.server)
            .field("shutdown_grace", &self.shutdown_grace)
            .finish()
    }
}

/// `url` with the password of its user part replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((user_part, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match user_part.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// The keys and claims bearer tokens are checked against.
#[derive(Clone)]
pub struct AuthConfig {
    /// Verifies tokens: the keys of the JWKS (`AUTH_JWKS`, or a file with
    /// `AUTH_JWKS_FILE`), the issuer (`AUTH_ISSUER`, default
    /// `omnisaga-local`) and audience (`AUTH_AUDIENCE`, default `omnisaga`).
    pub verifier: std::sync::Arc<omnisaga_auth::Verifier>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.verifier.fmt(f)
    }
}

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
    /// `(fetch wait in ms, fetch minimum bytes)` when unset.
    pub fn defaults(self) -> (u32, u32) {
        match self {
            Self::Prompt => (500, 1),
            Self::Batched => (100, 1_000_000),
        }
    }
}

/// The admin listener's default beside `http`: the same host, the port +
/// 100 (0 stays 0: any free port).
pub fn admin_addr(http: SocketAddr) -> SocketAddr {
    let port = match http.port() {
        0 => 0,
        port => port.saturating_add(100),
    };
    SocketAddr::new(http.ip(), port)
}

/// The longest a record `service` consumes can come back (the retention of
/// its topics and of their dead-letter topics, from which an operator
/// replays), plus a day: how long its inbox must remember an event so a
/// redelivery is known for one.
pub fn inbox_retention(service: &str) -> Duration {
    let longest = catalog()
        .consumed_by(service)
        .map(|t| t.retention_ms.max(t.dead_letter_retention_ms))
        .max()
        .unwrap_or(0);
    Duration::from_millis(longest) + Duration::from_secs(24 * 3600)
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
    fn a_secret_file_that_cannot_be_read_is_an_error_not_an_unset_variable() {
        assert_eq!(read_file_var("DATABASE_MIGRATION_URL", None).unwrap(), None);
        let err = read_file_var("DATABASE_MIGRATION_URL", Some("/nonexistent/uri".into())).unwrap_err();
        assert!(
            format!("{err:#}").contains("DATABASE_MIGRATION_URL_FILE=\"/nonexistent/uri\" cannot be read"),
            "{err:#}"
        );
        let dir = std::env::temp_dir().join(format!("omnisaga-var-{}", std::process::id()));
        std::fs::write(&dir, "postgres://o:p@db/x\n").unwrap();
        let value = read_file_var("X", Some(dir.display().to_string())).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(value.as_deref(), Some("postgres://o:p@db/x"));
    }

    #[test]
    fn a_database_password_never_shows_in_debug_output() {
        assert_eq!(
            redact_url("postgres://svc:s3cret@db:5432/orders"),
            "postgres://svc:***@db:5432/orders"
        );
        assert_eq!(redact_url("postgres://svc@db/orders"), "postgres://svc@db/orders");
        assert_eq!(redact_url("not a url"), "not a url");
        // `@` in a password: everything before the last one is the user part.
        assert_eq!(redact_url("postgres://svc:p@ss@db/o"), "postgres://svc:***@db/o");
    }

    #[test]
    fn the_inbox_remembers_an_event_as_long_as_any_record_can_come_back() {
        let day = Duration::from_secs(24 * 3600);
        for service in ["order", "payment", "warehouse", "notification", "analytics"] {
            let longest = catalog()
                .consumed_by(service)
                .flat_map(|t| [t.retention_ms, t.dead_letter_retention_ms])
                .max()
                .expect("every service consumes a topic");
            assert_eq!(
                inbox_retention(service),
                Duration::from_millis(longest) + day,
                "{service}"
            );
        }
        // The catalog keeps dead letters 28 days.
        assert_eq!(inbox_retention("order"), 29 * day);
    }

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
