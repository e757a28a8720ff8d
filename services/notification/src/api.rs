//! `GET /v1/notifications?order_id=`: the messages an order's customer got.

use axum::{
    extract::{Query, State},
    routing::get,
    Json, Router,
};
use chrono::{DateTime, Utc};
use omnisaga_runtime::http::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::{PgPool, Row};
use uuid::Uuid;

pub fn routes(pool: PgPool) -> Router {
    Router::new()
        .route("/v1/notifications", get(list))
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
    let rows = sqlx::query(
        "SELECT notification_id, template, text, channel, status, source_event_type, created_at, sent_at
         FROM notifications WHERE order_id = $1 ORDER BY created_at",
    )
    .bind(order_id)
    .fetch_all(&pool)
    .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "notification_id": r.get::<Uuid, _>(0),
                "order_id": order_id,
                "template": r.get::<String, _>(1),
                "text": r.get::<Option<String>, _>(2),
                "channel": r.get::<Option<String>, _>(3),
                "status": r.get::<String, _>(4),
                "source_event_type": r.get::<String, _>(5),
                "created_at": r.get::<DateTime<Utc>, _>(6),
                "sent_at": r.get::<Option<DateTime<Utc>>, _>(7),
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}
