//! Test support: a fresh database per test and a private topic prefix per
//! test, against the real PostgreSQL and the real broker the test scripts
//! start (`OMNISAGA_TEST_KAFKA`), a service's whole test configuration built
//! from them ([`config`]), events published as another service would, plus
//! waiting on a condition with a deadline, the given/when/then harness of
//! the services' pure deciders, responses checked against the OpenAPI
//! documents ([`openapi`]), tokens signed by the tests' key ([`auth`]), HTTPS
//! servers with a certificate authority of the test's own ([`https`]), the
//! statements a piece of work runs ([`Statements`]), and a service's read
//! models rebuilt through its admin API ([`rebuild`]). Behind the `testing`
//! feature: only tests turn it on.

mod app;
pub mod auth;
pub mod cli;
pub mod decider;
mod events;
pub mod https;
pub mod openapi;
pub mod rebuild;
pub mod scopes;
mod service;
mod statements;

pub use crate::base::wait::wait_for;
pub use app::{assert_error, TestApp, REQUEST_ID};
pub use events::{envelope, publish};
pub use service::config;
pub use statements::Statements;

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use omnisaga_proto::v1::envelope::Payload;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::messaging::kafka::KafkaConfig;

/// Where the topic catalog and `service`'s code disagree, both ways
/// ([`crate::catalog::Catalog::drift`]): the code is asked about one payload
/// of every type whether it publishes it and whether its consumers act on it.
pub fn catalog_drift(
    service: &str,
    publishes: impl Fn(&Payload) -> bool,
    reacts_to: impl Fn(&Payload) -> bool,
) -> Vec<String> {
    let every = omnisaga_proto::every_payload();
    let types = |pick: &dyn Fn(&Payload) -> bool| -> BTreeSet<String> {
        every
            .iter()
            .filter(|p| pick(p))
            .map(|p| p.event_type().to_owned())
            .collect()
    };
    crate::catalog::catalog().drift(service, &types(&publishes), &types(&reacts_to))
}

/// Server URL without a database, e.g. `postgres://postgres@127.0.0.1:5432`
/// (`OMNISAGA_TEST_PG`); the password comes from the PostgreSQL password
/// file when the URL has none (`infra/scripts/ensure-postgres.sh` puts it there).
pub fn pg_server() -> String {
    std::env::var("OMNISAGA_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Creates an empty database with a unique name and returns its URL.
pub async fn fresh_database(label: &str) -> Result<String> {
    let server = pg_server();
    let mut admin = PgConnection::connect(&format!("{server}/postgres"))
        .await
        .context("Failed to connect to PostgreSQL for tests (is it running on 127.0.0.1:5432?)")?;
    // A UUIDv7: its first 12 hex digits are the creation time, by which
    // `make test` drops the databases of runs long over.
    let name = format!("test_{label}_{}", Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .with_context(|| format!("Failed to create database {name}"))?;
    Ok(format!("{server}/{name}"))
}

/// A pool on a fresh database holding the runtime's tables and the
/// service's (`migrator`, e.g. `sqlx::migrate!("./migrations")`).
pub async fn migrated_database(label: &str, migrator: sqlx::migrate::Migrator) -> Result<sqlx::PgPool> {
    let url = fresh_database(label).await?;
    let pool = crate::base::db::connect(&url, 4).await?;
    crate::base::db::migrate(&pool, migrator).await?;
    Ok(pool)
}

/// The test broker with a topic prefix no other test uses, as its admin
/// (`OMNISAGA_TEST_KAFKA_USERNAME`, `OMNISAGA_TEST_KAFKA_PASSWORD_FILE`, set
/// by `make test`; the broker has ACLs, and the admin may do anything).
pub fn fresh_kafka() -> Result<KafkaConfig> {
    let brokers = std::env::var("OMNISAGA_TEST_KAFKA")
        .context("OMNISAGA_TEST_KAFKA is not set: run the tests with `make test`, which starts a broker")?;
    Ok(KafkaConfig {
        security: crate::catalog::client::ClientSecurity::test_broker_admin()?,
        brokers,
        topic_prefix: format!("t{}.", &Uuid::new_v4().simple().to_string()[..12]),
        fetch_wait_max_ms: 20,
        fetch_min_bytes: 1,
        topic_partitions: crate::catalog::catalog().partitions(),
        topic_replication_factor: crate::catalog::catalog().replication_factor(),
    })
}

/// Holds an importer's documented row (`Importer::Row`, in the OpenAPI
/// document) to its `check`, field by field: `edge` is a valid row with
/// every bounded field at its documented limit (a string of `maxLength`
/// characters, an integer at `maximum`); it must pass, and one character
/// more, one more, one less than `minimum` or an empty string under a
/// `minLength` must each fail on that field. Why not, when it does not hold.
pub fn documented_row_bounds_hold<I: crate::edge::batch::Importer>(
    importer: &I,
    edge: serde_json::Value,
) -> Result<()> {
    use anyhow::{bail, ensure};
    use utoipa::PartialSchema;
    let schema = serde_json::to_value(I::Row::schema())?;
    let check = |row: &serde_json::Value| {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/x-ndjson"),
        );
        let rows = crate::edge::batch::read(&headers, row.to_string().as_bytes())
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok::<_, anyhow::Error>(
            crate::edge::batch::check(importer, &rows)
                .err()
                .unwrap_or_default(),
        )
    };
    let problems = check(&edge)?;
    ensure!(
        problems.is_empty(),
        "the edge row {edge} is refused: {problems:?}"
    );
    for (field, rule) in schema["properties"].as_object().into_iter().flatten() {
        let value = &edge[field];
        let mut past = Vec::new();
        if let Some(max) = rule["maxLength"].as_u64() {
            let text = value.as_str().unwrap_or_default();
            ensure!(
                text.chars().count() as u64 == max,
                "{field}: the edge row's is not {max} long"
            );
            past.push(serde_json::json!(format!("{text}A")));
        }
        if rule["minLength"].as_u64() == Some(1) {
            past.push(serde_json::json!(""));
        }
        if let Some(max) = rule["maximum"].as_i64() {
            ensure!(
                value.as_i64() == Some(max),
                "{field}: the edge row's is not {max}"
            );
            past.push(serde_json::json!(max + 1));
        }
        if let Some(min) = rule["minimum"].as_i64() {
            past.push(serde_json::json!(min - 1));
        }
        for bad in past {
            let mut row = edge.clone();
            row[field] = bad.clone();
            let problems = check(&row)?;
            if !problems.iter().any(|p| p.field == *field) {
                bail!("{field} = {bad} is past what the document says, and check takes it: {problems:?}");
            }
        }
    }
    Ok(())
}
