//! `GET /v1/summary`: stage counts, fulfilment time percentiles and the
//! share of successful payments.

use axum::{extract::State, routing::get, Json, Router};
use omnisaga_runtime::http::ApiError;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::{
    domain::{success_share, to_tenths, Stage},
    store::{self, Percentiles},
};

pub fn routes(pool: PgPool) -> Router {
    Router::new().route("/v1/summary", get(summary)).with_state(pool)
}

async fn summary(State(pool): State<PgPool>) -> Result<Json<Value>, ApiError> {
    let counts = store::stage_counts(&pool).await?;
    let (authorized, failed) = store::payment_answers(&pool).await?;
    Ok(Json(json!({
        "orders": {
            "placed": counts.placed,
            "paid": counts.paid,
            "ready_for_shipment": counts.ready_for_shipment,
            "shipped": counts.shipped,
            "cancelled": counts.cancelled,
        },
        "payments": {
            "authorized": authorized,
            "failed": failed,
            "success_share": success_share(authorized, failed),
        },
        "fulfilment_ms": {
            "placed_to_ready_for_shipment": percentiles(store::time_to(&pool, Stage::ReadyForShipment).await?),
            "placed_to_shipped": percentiles(store::time_to(&pool, Stage::Shipped).await?),
        },
    })))
}

/// p50/p95/p99/max of the milliseconds from placement, to a tenth, over finished orders.
fn percentiles(p: Percentiles) -> Value {
    let f = |v: Option<f64>| v.map(to_tenths);
    json!({"count": p.count, "p50": f(p.p50), "p95": f(p.p95), "p99": f(p.p99), "max": f(p.max)})
}
