//! Payment's HTTP API: the provider simulator's outage switch (for demos and
//! fault tests) and a payment's state for support; operators' only (`admin`).

use std::sync::{atomic::Ordering, Arc};

use axum::{
    extract::{Path, State},
    middleware,
    routing::{get, put},
    Json, Router,
};
use omnisaga_auth::Scope;
use omnisaga_runtime::{
    auth,
    http::{ApiError, ApiJson},
};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::provider::Provider;

#[derive(Clone)]
struct ApiState {
    pool: PgPool,
    provider: Arc<Provider>,
}

pub fn routes(pool: PgPool, provider: Arc<Provider>) -> Router {
    Router::new()
        .route("/v1/admin/provider", put(set_provider).get(get_provider))
        .route("/v1/payments/{order_id}", get(payment))
        .route_layer(middleware::from_fn_with_state(Scope::Admin, auth::require_scope))
        .with_state(ApiState { pool, provider })
}

#[derive(Deserialize)]
struct ProviderSwitch {
    outage: bool,
}

async fn set_provider(State(s): State<ApiState>, ApiJson(body): ApiJson<ProviderSwitch>) -> Json<Value> {
    s.provider.outage.store(body.outage, Ordering::Relaxed);
    tracing::info!(outage = body.outage, "provider outage switch set");
    Json(json!({"outage": body.outage}))
}

async fn get_provider(State(s): State<ApiState>) -> Json<Value> {
    Json(json!({"outage": s.provider.outage.load(Ordering::Relaxed)}))
}

async fn payment(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let order_id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("no such payment"))?;
    let row =
        sqlx::query("SELECT status, attempts, amount_minor, currency FROM payment_view WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&s.pool)
            .await?
            .ok_or_else(|| ApiError::not_found("no such payment"))?;
    Ok(Json(json!({
        "order_id": order_id,
        "status": row.get::<String, _>(0),
        "attempts": row.get::<i32, _>(1),
        "amount": {"minor_units": row.get::<i64, _>(2), "currency": row.get::<String, _>(3)},
    })))
}
