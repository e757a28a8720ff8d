//! Typed configuration shared by every service, read once from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | (required) | the service's own PostgreSQL database, as the role the service runs as |
//! | `DATABASE_MIGRATION_URL` | unset: migrations run over `DATABASE_URL` | the same database as its owner: the service applies its migrations over it at start, grants `DATABASE_URL`'s role what it needs at run time (rows, not tables: see [`crate::base::db::grant_runtime`]) and closes it |
//! | `DATABASE_MAX_CONNECTIONS` | `10` | pool size |
//! | `DATABASE_STATEMENT_TIMEOUT_MS` | `30000` | PostgreSQL's `statement_timeout` on every connection of the pool (0: none; migrations run without it) |
//! | `DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS` | `30000` | PostgreSQL's `idle_in_transaction_session_timeout` on every connection: a transaction idle longer ends with its session, freeing its locks (0: none) |
//! | `KAFKA_BROKERS` | `127.0.0.1:9092` | bootstrap servers |
//! | `KAFKA_TOPIC_PREFIX` | `omnisaga.` | prefix of every topic name and consumer group id |
//! | `KAFKA_TOPIC_PARTITIONS` | `6` (`schemas/topics.json`) | partitions of a topic the service creates because it is missing |
//! | `HTTP_ADDR` | per service | listen address of the HTTP API (the public routes, the probes, the metrics) |
//! | `ADMIN_HTTP_ADDR` | `HTTP_ADDR`'s host, its port + 100 | listen address of the internal and admin routes (those needing `admin`, `stock:read`, `payment-methods:read` or `reconcile:read`; see `routes`), which only the cluster reaches |
//! | `HTTP_HEADER_READ_TIMEOUT_MS`, `HTTP_MAX_CONNECTIONS`, `HTTP_CONNECTION_MAX_AGE_SECS` | `10000`, `1024`, `300` | the server's limits ([`crate::edge::server::Settings`]) |
//! | `OUTBOX_POLL_MS` | `1000` | relay poll interval when nothing woke it (a commit wakes it at once; the poll only catches a lost wake) |
//! | `KAFKA_FETCH_WAIT_MAX_MS` | `500`; `100` for followers | longest a fetch waits at the broker for `KAFKA_FETCH_MIN_BYTES` (see [`Fetch`]) |
//! | `KAFKA_FETCH_MIN_BYTES` | `1`; `1000000` for followers | bytes a fetch waits for before it answers |
//! | `KAFKA_SECURITY_PROTOCOL`, `KAFKA_USERNAME`, `KAFKA_PASSWORD`, `KAFKA_SASL_MECHANISM`, `KAFKA_SSL_CA_FILE` | plain text, no user | how the service authenticates to the broker ([`ClientSecurity`]) |
//! | `KAFKA_GROUP_SUFFIX` | empty | appended to consumer group ids (a new suffix re-reads every topic from the start; the inbox keeps it harmless) |
//! | `TLS_CERT_FILE`, `TLS_KEY_FILE` | unset (plain HTTP) | the listener's certificate chain and key, PEM ([`crate::edge::tls`]) |
//! | `TLS_CA_FILE` | unset (the system's CAs) | CA certificates (PEM) outbound HTTPS calls trust besides the system's: webhooks, payment to order, order to warehouse ([`crate::edge::http_client`]); unreadable or without a certificate, the service does not start |
//! | `LOG_FORMAT` | `json` | `json` or `pretty` |
//! | `RUST_LOG` | `info` | log filter |
//!
//! A value may also come from a file: `NAME_FILE=/path` reads `NAME` from it
//! (for secrets such as a database URL with a password); a file that cannot
//! be read is an error, never an unset variable.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, Result};

use crate::{
    catalog::{catalog, client::ClientSecurity},
    edge::routes::admin_addr,
};

pub use crate::{
    base::env::{parse_or, var},
    messaging::kafka::{Fetch, KafkaConfig, Topics},
};

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
    pub database_timeouts: crate::base::db::Timeouts,
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
    pub limits: crate::edge::limits::Limits,
    /// HTTPS instead of HTTP (`TLS_CERT_FILE`, `TLS_KEY_FILE`).
    pub tls: Option<crate::edge::tls::TlsFiles>,
    /// The CAs outbound HTTPS calls trust: the system's and `TLS_CA_FILE`'s.
    pub http_trust: crate::edge::http_client::Trust,
    /// Header read timeout, connections at once and their age (`HTTP_*`).
    pub server: crate::edge::server::Settings,
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

/// The HTTP limits: `HTTP_RATE_LIMIT_PER_SECOND` and `HTTP_RATE_LIMIT_BURST`
/// per client, `HTTP_MAX_CONCURRENT_REQUESTS`, `HTTP_REQUEST_TIMEOUT_MS`.
fn limits_from_env() -> Result<crate::edge::limits::Limits> {
    let d = crate::edge::limits::Limits::default();
    let limits = crate::edge::limits::Limits {
        rate_per_second: parse_or("HTTP_RATE_LIMIT_PER_SECOND", d.rate_per_second)?,
        burst: parse_or("HTTP_RATE_LIMIT_BURST", d.burst)?,
        max_concurrent: parse_or("HTTP_MAX_CONCURRENT_REQUESTS", d.max_concurrent)?,
        timeout: Duration::from_millis(parse_or("HTTP_REQUEST_TIMEOUT_MS", d.timeout.as_millis() as u64)?),
    };
    anyhow::ensure!(
        limits.rate_per_second > 0.0 && limits.burst >= 1.0,
        "HTTP_RATE_LIMIT_PER_SECOND must be above 0 and HTTP_RATE_LIMIT_BURST at least 1"
    );
    anyhow::ensure!(
        limits.max_concurrent >= 1,
        "HTTP_MAX_CONCURRENT_REQUESTS must be at least 1"
    );
    anyhow::ensure!(
        !limits.timeout.is_zero(),
        "HTTP_REQUEST_TIMEOUT_MS must be above 0"
    );
    Ok(limits)
}

/// `DATABASE_STATEMENT_TIMEOUT_MS` and `DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS`.
fn database_timeouts() -> Result<crate::base::db::Timeouts> {
    let d = crate::base::db::Timeouts::default();
    Ok(crate::base::db::Timeouts {
        statement: Duration::from_millis(parse_or(
            "DATABASE_STATEMENT_TIMEOUT_MS",
            d.statement.as_millis() as u64,
        )?),
        idle_in_transaction: Duration::from_millis(parse_or(
            "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS",
            d.idle_in_transaction.as_millis() as u64,
        )?),
    })
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

impl AuthConfig {
    pub fn from_env() -> Result<Self> {
        let jwks = var("AUTH_JWKS")?.context(
            "AUTH_JWKS_FILE (or AUTH_JWKS) is not set: every API call is checked against the keys of a JWKS \
             (make run creates a local one in .omnisaga/auth/jwks.json)",
        )?;
        let issuer = var("AUTH_ISSUER")?.unwrap_or_else(|| omnisaga_auth::LOCAL_ISSUER.into());
        let audience = var("AUTH_AUDIENCE")?.unwrap_or_else(|| omnisaga_auth::LOCAL_AUDIENCE.into());
        let verifier = omnisaga_auth::Verifier::from_jwks(&jwks, &issuer, &audience).context("AUTH_JWKS")?;
        Ok(Self {
            verifier: std::sync::Arc::new(verifier),
        })
    }
}

impl CommonConfig {
    /// How the service reaches its database, as [`crate::base::db::prepare`] takes it.
    pub fn database(&self) -> crate::base::db::Settings {
        crate::base::db::Settings {
            url: self.database_url.clone(),
            migration_url: self.database_migration_url.clone(),
            max_connections: self.database_max_connections,
            timeouts: self.database_timeouts,
        }
    }

    /// Reads the common variables of a saga step; `default_port` is the
    /// service's usual HTTP port.
    pub fn from_env(service: &'static str, default_port: u16) -> Result<Self> {
        Self::from_env_with(service, default_port, Fetch::Prompt)
    }

    /// Reads the common variables, with the fetch defaults of `fetch`.
    pub fn from_env_with(service: &'static str, default_port: u16, fetch: Fetch) -> Result<Self> {
        // First: a CA file that is wrong is said before anything else.
        let http_trust = crate::edge::http_client::Trust::from_env()?;
        let (fetch_wait_max_ms, fetch_min_bytes) =
            fetch.settings(var("KAFKA_FETCH_WAIT_MAX_MS")?, var("KAFKA_FETCH_MIN_BYTES")?)?;
        let database_url = var("DATABASE_URL")?.context("DATABASE_URL is not set")?;
        let http_addr = parse_or("HTTP_ADDR", SocketAddr::from(([127, 0, 0, 1], default_port)))?;
        // Tests only: the process's wall clock set off (`crate::base::clock`).
        crate::base::clock::set_skew(parse_or("CLOCK_SKEW_SECS", 0)?)?;
        Ok(Self {
            service,
            database_url,
            database_migration_url: var("DATABASE_MIGRATION_URL")?.filter(|u| !u.is_empty()),
            database_max_connections: parse_or("DATABASE_MAX_CONNECTIONS", 10)?,
            database_timeouts: database_timeouts()?,
            kafka: KafkaConfig {
                brokers: var("KAFKA_BROKERS")?.unwrap_or_else(|| "127.0.0.1:9092".into()),
                topic_prefix: var("KAFKA_TOPIC_PREFIX")?.unwrap_or_else(|| "omnisaga.".into()),
                fetch_wait_max_ms,
                fetch_min_bytes,
                topic_partitions: parse_or("KAFKA_TOPIC_PARTITIONS", catalog().partitions())?.max(1),
                topic_replication_factor: {
                    let rf = parse_or("KAFKA_TOPIC_REPLICATION_FACTOR", catalog().replication_factor())?;
                    anyhow::ensure!(rf >= 1, "KAFKA_TOPIC_REPLICATION_FACTOR must be at least 1");
                    rf
                },
                security: ClientSecurity::from_vars(var)?,
            },
            http_addr,
            admin_http_addr: parse_or("ADMIN_HTTP_ADDR", admin_addr(http_addr))?,
            outbox_poll: Duration::from_millis(parse_or("OUTBOX_POLL_MS", 1000)?),
            group_suffix: var("KAFKA_GROUP_SUFFIX")?.unwrap_or_default(),
            consumer_batch_max: parse_or("CONSUMER_BATCH_MAX", 64)?.max(1),
            inbox_retention: match var("INBOX_RETENTION_HOURS")? {
                None => inbox_retention(service),
                Some(_) => {
                    let hours: u64 = parse_or("INBOX_RETENTION_HOURS", 0)?;
                    anyhow::ensure!(hours >= 1, "INBOX_RETENTION_HOURS must be at least 1 (hours)");
                    Duration::from_secs(3600 * hours)
                }
            },
            auth: AuthConfig::from_env()?,
            limits: limits_from_env()?,
            tls: crate::edge::tls::TlsFiles::from_env()?,
            http_trust,
            server: crate::edge::server::Settings::from_env()?,
            shutdown_grace: {
                let ms: u64 = parse_or("SHUTDOWN_GRACE_MS", 8000)?;
                anyhow::ensure!(ms >= 1000, "SHUTDOWN_GRACE_MS must be at least 1000");
                Duration::from_millis(ms)
            },
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
