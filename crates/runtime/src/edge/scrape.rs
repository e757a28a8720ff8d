//! `GET /metrics`: the registry of [`crate::base::metrics`] in the
//! Prometheus text format, with the gauges that describe state (outbox
//! backlog, parked keys, and whatever the service refreshes) read first.

use std::sync::Arc;

use axum::{extract::State, http::header, response::IntoResponse, routing, Router};
use prometheus::TextEncoder;
use sqlx::PgPool;

use crate::base::metrics::{get, Refresh};

#[derive(Clone)]
pub(crate) struct MetricsState {
    pool: PgPool,
    refresh: Arc<Vec<Refresh>>,
}

/// `GET /metrics` in the Prometheus text format.
pub fn routes(pool: PgPool, refresh: Vec<Refresh>) -> Router {
    Router::new()
        .route("/metrics", routing::get(scrape))
        .with_state(MetricsState {
            pool,
            refresh: Arc::new(refresh),
        })
}

/// Prometheus metrics
///
/// Every metric of the service in the Prometheus text format (docs/observability.md).
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain")))]
pub(crate) async fn scrape(State(s): State<MetricsState>) -> impl IntoResponse {
    let m = get();
    if let Ok(n) = crate::es::outbox::backlog(&s.pool).await {
        m.outbox_backlog.set(n);
    }
    if let Ok(n) = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM parked")
        .fetch_one(&s.pool)
        .await
    {
        m.dead_letters_parked.set(n);
    }
    for refresh in s.refresh.iter() {
        refresh(s.pool.clone()).await;
    }
    let body = TextEncoder::new()
        .encode_to_string(&m.registry.gather())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
