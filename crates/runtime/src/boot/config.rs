//! Typed configuration shared by every service, read once from the environment.
//!
//! Each setting is a clap argument with its environment variable, default
//! and meaning ([`crate::boot::cli::CommonArgs`], and each service's own
//! `config.rs`); `<service> --help` lists them and docs/configuration.md is
//! generated from them.
//!
//! A value may also come from a file: `NAME_FILE=/path` reads `NAME` from it
//! (for secrets such as a database URL with a password); a file that cannot
//! be read is an error, never an unset variable.

use std::{net::SocketAddr, time::Duration};

use crate::catalog::catalog;

pub use crate::{
    base::env::var,
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
