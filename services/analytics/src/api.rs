//! `GET /v1/summary`: stage counts, fulfilment time percentiles and the
//! share of successful payments.

use axum::{extract::State, routing::get, Json, Router};
use omnisaga_runtime::http::ApiError;
use serde_json::{json, Value};
use sqlx::{PgPool, Row};

pub fn routes(pool: PgPool) -> Router {
    Router::new().route("/v1/summary", get(summary)).with_state(pool)
}

async fn summary(State(pool): State<PgPool>) -> Result<Json<Value>, ApiError> {
    let counts = sqlx::query(
        "SELECT count(placed_at), count(paid_at), count(ready_at), count(shipped_at), count(cancelled_at)
         FROM order_stages",
    )
    .fetch_one(&pool)
    .await?;
    let payments = sqlx::query(
        "SELECT count(*) FILTER (WHERE event_type = 'PaymentAuthorized'),
                count(*) FILTER (WHERE event_type = 'PaymentFailed')
         FROM received_events WHERE event_type IN ('PaymentAuthorized', 'PaymentFailed')",
    )
    .fetch_one(&pool)
    .await?;
    let (authorized, failed): (i64, i64) = (payments.get(0), payments.get(1));
    let attempts = authorized + failed;
    Ok(Json(json!({
        "orders": {
            "placed": counts.get::<i64, _>(0),
            "paid": counts.get::<i64, _>(1),
            "ready_for_shipment": counts.get::<i64, _>(2),
            "shipped": counts.get::<i64, _>(3),
            "cancelled": counts.get::<i64, _>(4),
        },
        "payments": {
            "authorized": authorized,
            "failed": failed,
            "success_share": if attempts == 0 { Value::Null } else { json!(authorized as f64 / attempts as f64) },
        },
        "fulfilment_ms": {
            "placed_to_ready_for_shipment": percentiles(&pool, "ready_at").await?,
            "placed_to_shipped": percentiles(&pool, "shipped_at").await?,
        },
    })))
}

/// p50/p95/p99/max of `column - placed_at` in milliseconds over finished orders.
async fn percentiles(pool: &PgPool, column: &'static str) -> Result<Value, sqlx::Error> {
    let sql = format!(
        "SELECT count(*),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
                percentile_cont(0.95) WITHIN GROUP (ORDER BY ms),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY ms),
                max(ms)
         FROM (SELECT extract(epoch FROM {column} - placed_at)::float8 * 1000 AS ms
               FROM order_stages WHERE {column} IS NOT NULL AND placed_at IS NOT NULL) d"
    );
    let r = sqlx::query(&sql).fetch_one(pool).await?;
    let n: i64 = r.get(0);
    let f = |i: usize| r.get::<Option<f64>, _>(i).map(|v| (v * 10.0).round() / 10.0);
    Ok(json!({"count": n, "p50": f(1), "p95": f(2), "p99": f(3), "max": f(4)}))
}
