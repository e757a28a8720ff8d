//! `GET /v1/notifications?order_id=`: the messages an order's customer got,
//! for that customer (`orders:read`) and for operators (`admin`).

use axum::{
    extract::{Query, State},
    routing::get,
    Json, Router,
};
use omnisaga_auth::Scope;
use omnisaga_runtime::{auth::Caller, http::ApiError};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::store;

pub fn routes(pool: PgPool) -> Router {
    Router::new()
        .route("/v1/notifications", get(list))
        .with_state(pool)
}

#[derive(Deserialize)]
struct ListQuery {
    order_id: Option<String>,
}

async fn list(
    State(pool): State<PgPool>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::OrdersRead)?;
    let order_id = q
        .order_id
        .as_deref()
        .ok_or_else(|| ApiError::validation("the order_id query parameter is required"))?;
    let order_id = Uuid::parse_str(order_id).map_err(|_| ApiError::validation("order_id must be a UUID"))?;
    // A customer sees their own orders' messages; another's order is no
    // such order, the same as one this service never heard of.
    if !caller.is_admin() {
        match store::customer_of(&pool, order_id).await? {
            Some(customer) if caller.owns(&customer) => {}
            _ => return Err(ApiError::not_found("no such order")),
        }
    }
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
