//! [`CommonArgs`] into [`CommonConfig`]: the values checked together, an
//! error naming the variable.

use std::{net::SocketAddr, time::Duration};

use anyhow::{ensure, Context, Result};

use super::{CommonArgs, Service};
use crate::{
    boot::config::{inbox_retention, AuthConfig, CommonConfig},
    catalog::client::ClientSecurity,
    edge::routes::admin_addr,
    messaging::kafka::KafkaConfig,
};

impl CommonArgs {
    /// The values of settings left unset that follow from others:
    /// `ADMIN_HTTP_ADDR` from `HTTP_ADDR`, `INBOX_RETENTION_HOURS` from the
    /// topics' retention.
    pub fn derived(&self, service: &Service) -> Vec<(&'static str, String)> {
        let http = self
            .http_addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], service.port)));
        vec![
            ("ADMIN_HTTP_ADDR", admin_addr(http).to_string()),
            (
                "INBOX_RETENTION_HOURS",
                (inbox_retention(service.name).as_secs() / 3600).to_string(),
            ),
        ]
    }

    /// The settings of `service`, checked; an error names the variable.
    pub fn into_config(self, service: &Service) -> Result<CommonConfig> {
        // First: a CA file that is wrong is said before anything else.
        let http_trust = crate::edge::http_client::Trust::from_vars(|_| Ok(self.tls_ca_file.clone()))?;
        ensure!(
            self.kafka_fetch_min_bytes >= 1,
            "KAFKA_FETCH_MIN_BYTES=0 is invalid: a fetch needs at least 1 byte"
        );
        let http_addr = self
            .http_addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], service.port)));
        // Tests only: the process's wall clock set off (`crate::base::clock`).
        crate::base::clock::set_skew(self.clock_skew_secs)?;
        // Process-wide, as the spans they shape are made everywhere.
        crate::base::db::set_spans(self.trace_db_spans);
        crate::messaging::consumer::set_ignored_spans(self.trace_ignored_records);
        let security = ClientSecurity::from_vars(|name| {
            Ok(match name {
                "KAFKA_USERNAME" => self.kafka_username.clone(),
                "KAFKA_PASSWORD" => self.kafka_password.clone(),
                "KAFKA_SECURITY_PROTOCOL" => self.kafka_security_protocol.clone(),
                "KAFKA_SASL_MECHANISM" => self.kafka_sasl_mechanism.clone(),
                "KAFKA_SSL_CA_FILE" => self.kafka_ssl_ca_file.clone(),
                _ => None,
            })
        })?;
        ensure!(
            self.kafka_topic_replication_factor >= 1,
            "KAFKA_TOPIC_REPLICATION_FACTOR must be at least 1"
        );
        let inbox_retention = match self.inbox_retention_hours {
            None => inbox_retention(service.name),
            Some(hours) => {
                ensure!(hours >= 1, "INBOX_RETENTION_HOURS must be at least 1 (hours)");
                Duration::from_secs(3600 * hours)
            }
        };
        ensure!(
            self.shutdown_grace_ms >= 1000,
            "SHUTDOWN_GRACE_MS must be at least 1000"
        );
        Ok(CommonConfig {
            service: service.name,
            database_url: self.database_url,
            database_migration_url: self.database_migration_url.filter(|u| !u.is_empty()),
            database_max_connections: self.database_max_connections,
            database_timeouts: crate::base::db::Timeouts {
                statement: Duration::from_millis(self.database_statement_timeout_ms),
                idle_in_transaction: Duration::from_millis(self.database_idle_in_transaction_timeout_ms),
            },
            kafka: KafkaConfig {
                brokers: self.kafka_brokers,
                topic_prefix: self.kafka_topic_prefix,
                fetch_wait_max_ms: self.kafka_fetch_wait_max_ms,
                fetch_min_bytes: self.kafka_fetch_min_bytes,
                topic_partitions: self.kafka_topic_partitions.max(1),
                topic_replication_factor: self.kafka_topic_replication_factor,
                security,
            },
            http_addr,
            admin_http_addr: self.admin_http_addr.unwrap_or_else(|| admin_addr(http_addr)),
            outbox_poll: Duration::from_millis(self.outbox_poll_ms),
            group_suffix: self.kafka_group_suffix.unwrap_or_default(),
            consumer_batch_max: self.consumer_batch_max.max(1),
            inbox_retention,
            auth: auth(self.auth_jwks, &self.auth_issuer, &self.auth_audience)?,
            limits: limits(
                self.http_rate_limit_per_second,
                self.http_rate_limit_burst,
                self.http_max_concurrent_requests,
                self.http_request_timeout_ms,
            )?,
            tls: tls(self.tls_cert_file, self.tls_key_file)?,
            http_trust,
            server: server(
                self.http_header_read_timeout_ms,
                self.http_max_connections,
                self.http_connection_max_age_secs,
            )?,
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
        })
    }
}

fn auth(jwks: Option<String>, issuer: &str, audience: &str) -> Result<AuthConfig> {
    let jwks = jwks.context(
        "AUTH_JWKS_FILE (or AUTH_JWKS) is not set: every API call is checked against the keys of a JWKS \
         (make run creates a local one in .omnisaga/auth/jwks.json)",
    )?;
    let verifier = omnisaga_auth::Verifier::from_jwks(&jwks, issuer, audience).context("AUTH_JWKS")?;
    Ok(AuthConfig {
        verifier: std::sync::Arc::new(verifier),
    })
}

/// The HTTP limits, checked.
fn limits(
    rate: f64,
    burst: f64,
    max_concurrent: usize,
    timeout_ms: u64,
) -> Result<crate::edge::limits::Limits> {
    ensure!(
        rate > 0.0 && burst >= 1.0,
        "HTTP_RATE_LIMIT_PER_SECOND must be above 0 and HTTP_RATE_LIMIT_BURST at least 1"
    );
    ensure!(
        max_concurrent >= 1,
        "HTTP_MAX_CONCURRENT_REQUESTS must be at least 1"
    );
    ensure!(timeout_ms > 0, "HTTP_REQUEST_TIMEOUT_MS must be above 0");
    Ok(crate::edge::limits::Limits {
        rate_per_second: rate,
        burst,
        max_concurrent,
        timeout: Duration::from_millis(timeout_ms),
    })
}

/// `TLS_CERT_FILE` and `TLS_KEY_FILE`: both, or neither (plain HTTP).
fn tls(cert: Option<String>, key: Option<String>) -> Result<Option<crate::edge::tls::TlsFiles>> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(crate::edge::tls::TlsFiles {
            cert: cert.into(),
            key: key.into(),
        })),
        (None, None) => Ok(None),
        _ => anyhow::bail!("TLS_CERT_FILE and TLS_KEY_FILE go together: set both for HTTPS, or neither"),
    }
}

/// The server's limits, checked.
fn server(
    header_read_ms: u64,
    max_connections: usize,
    max_age_secs: u64,
) -> Result<crate::edge::server::Settings> {
    ensure!(header_read_ms > 0, "HTTP_HEADER_READ_TIMEOUT_MS must be above 0");
    ensure!(
        (1..=tokio::sync::Semaphore::MAX_PERMITS.min(u32::MAX as usize)).contains(&max_connections),
        "HTTP_MAX_CONNECTIONS must be at least 1"
    );
    ensure!(max_age_secs > 0, "HTTP_CONNECTION_MAX_AGE_SECS must be above 0");
    Ok(crate::edge::server::Settings {
        header_read_timeout: Duration::from_millis(header_read_ms),
        max_connections,
        connection_max_age: Duration::from_secs(max_age_secs),
    })
}
