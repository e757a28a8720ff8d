//! A service's settings for a test: what `cli::CommonArgs` reads in
//! production, made for one test so that tests running side by side share
//! nothing but the servers.

use std::time::Duration;

use anyhow::Result;

use crate::boot::config::CommonConfig;

/// The common settings of `service` for one test: a fresh, empty database
/// (the service migrates it when it starts), the test broker under a topic
/// and group prefix no other test uses, HTTP on free ports of 127.0.0.1 (the public and the admin listener), and
/// the relay's fallback poll at 100 ms so a lost wake costs a test little.
///
/// The fields are public: a test that needs another value sets it on the
/// result (`CommonConfig { consumer_batch_max: 1, ..config }`).
pub async fn config(service: &'static str) -> Result<CommonConfig> {
    Ok(CommonConfig {
        service,
        database_url: super::fresh_database(service).await?,
        database_migration_url: None,
        // Small: many tests' services hold pools on one PostgreSQL at once.
        database_max_connections: 5,
        database_timeouts: Default::default(),
        kafka: super::fresh_kafka()?,
        http_addr: ([127, 0, 0, 1], 0).into(),
        admin_http_addr: ([127, 0, 0, 1], 0).into(),
        outbox_poll: Duration::from_millis(100),
        group_suffix: String::new(),
        consumer_batch_max: 64,
        inbox_retention: Duration::from_secs(7 * 24 * 3600),
        auth: super::auth::config(),
        limits: Default::default(),
        tls: None,
        http_trust: Default::default(),
        server: Default::default(),
        shutdown_grace: Duration::from_secs(8),
    })
}
