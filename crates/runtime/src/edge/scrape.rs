//! `GET /metrics`: the registry of [`crate::base::metrics`] in the
//! Prometheus text format, or in OpenMetrics with the latency histograms'
//! exemplars when the scraper asks for `application/openmetrics-text`
//! (`crate::base::openmetrics`), with the gauges that describe state
//! (outbox backlog, parked keys, and whatever the service refreshes) read
//! first.

use std::sync::Arc;

use axum::{
    extract::State,
    http::{header, HeaderMap},
    response::IntoResponse,
    routing, Router,
};
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
/// Every metric of the service in the Prometheus text format, or in
/// OpenMetrics 1.0.0 with exemplars when `Accept` names
/// `application/openmetrics-text` (docs/observability.md).
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text format 0.0.4, or OpenMetrics 1.0.0 with exemplars",
        content((String = "text/plain"), (String = "application/openmetrics-text")))))]
pub(crate) async fn scrape(State(s): State<MetricsState>, headers: HeaderMap) -> impl IntoResponse {
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
    if wants_openmetrics(&headers) {
        let body = crate::base::openmetrics::encode(&m.registry.gather(), &m.exemplars);
        return (
            [(header::CONTENT_TYPE, crate::base::openmetrics::CONTENT_TYPE)],
            body,
        );
    }
    let body = TextEncoder::new()
        .encode_to_string(&m.registry.gather())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// Whether `Accept` takes `application/openmetrics-text` (with a quality
/// above 0): Prometheus asks for it first.
pub(crate) fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut params = range.split(';').map(str::trim);
            let media = params.next().unwrap_or_default();
            let refused = params.any(|p| {
                p.strip_prefix("q=")
                    .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn openmetrics_when_the_scraper_takes_it() {
        let accept = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            }
            wants_openmetrics(&headers)
        };
        // Prometheus 2.42's.
        assert!(accept(&["application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"]));
        assert!(accept(&["text/plain", "Application/OpenMetrics-Text; q=0.3"]));
        assert!(!accept(&[]));
        assert!(!accept(&["text/plain;version=0.0.4"]));
        assert!(!accept(&["*/*"]));
        assert!(!accept(&["application/openmetrics-text;q=0, text/plain"]));
    }
}
