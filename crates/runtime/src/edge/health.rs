//! `/healthz` (the process is alive, its relay's producer not broken) and
//! `/readyz` (the database answers; the broker's state, watched by
//! [`crate::messaging::probe`], is a detail of it).

use std::time::Duration;

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde::Serialize;
use sqlx::PgPool;

use crate::messaging::kafka::KafkaConfig;

/// What `/readyz` checks: the database, which the API cannot serve
/// without. The broker's state is reported beside it and never makes the
/// service unready (see [`crate::messaging::probe`]).
#[derive(Clone)]
pub struct Readiness {
    pool: PgPool,
    broker: crate::messaging::probe::BrokerWatch,
    /// The relay's producer, whose fatal errors `/healthz` reports.
    producer: Option<crate::messaging::kafka::Producer>,
}

impl Readiness {
    pub fn new(pool: PgPool, kafka: &KafkaConfig) -> anyhow::Result<Self> {
        Ok(Self {
            pool,
            broker: crate::messaging::probe::BrokerWatch::new(kafka)?,
            producer: None,
        })
    }

    /// Reports `producer`'s fatal errors in `/healthz`.
    pub fn with_producer(self, producer: crate::messaging::kafka::Producer) -> Self {
        Self {
            producer: Some(producer),
            ..self
        }
    }

    async fn check(&self) -> Result<(), String> {
        tokio::time::timeout(
            Duration::from_secs(2),
            sqlx::query("SELECT 1").execute(&self.pool),
        )
        .await
        .map_err(|_| "database: timeout".to_owned())?
        .map_err(|e| format!("database: {e}"))?;
        Ok(())
    }
}

/// `/healthz` (the process is alive) and `/readyz` (the database reachable,
/// the broker's state beside it).
pub fn health_routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

/// What `/healthz` and `/readyz` say.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` (alive), `ready`, or `unavailable` (with the reason).
    #[schema(pattern = "^(ok|ready|unavailable)$")]
    pub status: &'static str,
    /// What is wrong, and why: the database unreachable (`/readyz`), the
    /// relay's producer broken (`/healthz`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `/readyz` only: the broker as last seen, `reachable`, `unreachable:
    /// <why>` or `not checked yet`. It does not make the service unready:
    /// the outbox keeps what the API accepts until the broker is back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
    /// `/healthz` only, once it happened: the relay's Kafka producer had a
    /// fatal error and was replaced (how often, and the last error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub producer: Option<String>,
}

/// Liveness
///
/// The process is alive and serving HTTP, and its relay can publish. A
/// Kafka producer that had a fatal error is replaced and reported in
/// `producer`; while one stays broken (its replacement failed) the answer
/// is 503, so the orchestrator restarts the instance.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses(
        (status = 200, description = "alive", body = Health),
        (status = 503, description = "the relay's producer had a fatal error and could not be replaced", body = Health),
    ))]
pub(crate) async fn healthz(State(r): State<Readiness>) -> Response {
    let health = r.producer.as_ref().map(|p| p.health()).unwrap_or_default();
    let producer = health.last_fatal.as_ref().map(|last| {
        format!(
            "replaced {} time(s) after a fatal error; the last: {last}",
            health.recreated
        )
    });
    match health.broken {
        None => Json(Health {
            status: "ok",
            reason: None,
            broker: None,
            producer,
        })
        .into_response(),
        Some(fatal) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable",
                reason: Some(format!("producer: fatal error, not replaced: {fatal}")),
                broker: None,
                producer,
            }),
        )
            .into_response(),
    }
}

/// Readiness
///
/// The service can serve its API: the database answers within 2 s. The
/// broker's state is reported in `broker` (as last seen, checked in the
/// background) and does not make the service unready: while the broker is
/// down, what the API accepts waits in the outbox.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses(
        (status = 200, description = "ready; `broker` says whether the broker answers", body = Health),
        (status = 503, description = "unavailable: the database does not answer", body = Health),
    ))]
pub(crate) async fn readyz(State(r): State<Readiness>) -> Response {
    let broker = Some(crate::messaging::probe::describe(r.broker.seen()));
    match r.check().await {
        Ok(()) => Json(Health {
            status: "ready",
            reason: None,
            broker,
            producer: None,
        })
        .into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable",
                reason: Some(reason),
                broker,
                producer: None,
            }),
        )
            .into_response(),
    }
}
