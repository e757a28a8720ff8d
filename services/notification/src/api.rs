//! `GET /v1/notifications?order_id=`: the messages an order's customer got,
//! for operators (`admin`).

use axum::{
    extract::{Query, State},
    middleware,
    routing::get,
    Json, Router,
};
use omnisaga_auth::Scope;
use omnisaga_runtime::{auth, http::ApiError};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::store;

pub fn routes(pool: PgPool) -> Router {
    Router::new()
        .route("/v1/notifications", get(list))
        .route_layer(middleware::from_fn_with_state(Scope::Admin, auth::require_scope))
        .with_state(pool)
}

#[derive(Deserialize)]
struct ListQuery {
    order_id: Option<String>,
}

async fn list(State(pool): State<PgPool>, Query(q): Query<ListQuery>) -> Result<Json<Value>, ApiError> {
    let order_id = q
        .order_id
        .as_deref()
        .ok_or_else(|| ApiError::validation("the order_id query parameter is required"))?;
    let order_id = Uuid::parse_str(order_id).map_err(|_| ApiError::validation("order_id must be a UUID"))?;
    let items: Vec<Value> = store::list_for_order(&pool, order_id)
        .await?
        .into_iter()
        .map(|n| {
            json!({
                "notification_id": n.notification_id,
                "order_id": order_id,
                "template": n.template,
                "text": n.text,
                "channel": n.channel,
                "status": n.status,
                "source_event_type": n.source_event_type,
                "created_at": n.created_at,
                "sent_at": n.sent_at,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}
