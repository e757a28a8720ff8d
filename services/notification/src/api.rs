//! `GET /v1/orders/{order_id}/notifications`: the messages an order's
//! customer got, for that customer (`orders:read`) and for operators
//! (`admin`); its deprecated form `GET /v1/notifications?order_id=`, the
//! same with `Deprecation` and `Sunset` headers until it is retired; and for
//! operators only, the messages the channel refused until they were dead
//! (`GET /v1/admin/messages/dead`) and their retry
//! (`POST /v1/admin/messages/{id}/retry`).

use axum::{
    extract::{Path, Query, State},
    middleware,
    routing::{get, post},
    Json, Router,
};
use chrono::{DateTime, Utc};
use omnisaga_auth::Scope;
use omnisaga_runtime::{
    auth::{self, Caller},
    deprecation::{self, Deprecation},
    http::ApiError,
    outbox::{OutboxWaker, Written},
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::store::{self, Attempted};

#[derive(Clone)]
struct ApiState {
    pool: PgPool,
    /// Wakes the dispatcher when an operator queues a message again.
    waker: OutboxWaker,
}

pub fn routes(pool: PgPool, waker: OutboxWaker) -> Router {
    let admin = Router::new()
        .route("/v1/admin/messages/dead", get(dead))
        .route("/v1/admin/messages/{id}/retry", post(retry))
        .route_layer(middleware::from_fn_with_state(Scope::Admin, auth::require_scope));
    Router::new()
        .route("/v1/orders/{order_id}/notifications", get(list))
        .route("/v1/notifications", get(list_by_query))
        .merge(admin)
        .with_state(ApiState { pool, waker })
}

#[derive(Deserialize)]
struct ListQuery {
    order_id: Option<String>,
}

/// `GET /v1/notifications?order_id=`, the first form of the list, is
/// deprecated for `GET /v1/orders/{order_id}/notifications` (a resource
/// of the order, as every other per-order read is).
pub const LIST_BY_QUERY: Deprecation = Deprecation {
    route: "/v1/notifications",
    // 2026-12-04T00:00:00Z.
    since: DateTime::from_timestamp(1_796_342_400, 0).unwrap(),
    // 2027-06-30T23:59:59Z.
    sunset: DateTime::from_timestamp(1_814_399_999, 0).unwrap(),
};

async fn list_by_query(
    state: State<ApiState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<(deprecation::Headers, Json<Value>), ApiError> {
    caller.require(Scope::OrdersRead)?;
    let order_id = q
        .order_id
        .as_deref()
        .ok_or_else(|| ApiError::validation("the order_id query parameter is required"))?;
    let order_id = Uuid::parse_str(order_id).map_err(|_| ApiError::validation("order_id must be a UUID"))?;
    let headers = LIST_BY_QUERY.call(Utc::now(), format!("/v1/orders/{order_id}/notifications"))?;
    Ok((headers, messages(state, caller, order_id).await?))
}

async fn list(
    state: State<ApiState>,
    caller: Caller,
    Path(order_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::OrdersRead)?;
    let order_id = Uuid::parse_str(&order_id).map_err(|_| ApiError::not_found("no such order"))?;
    messages(state, caller, order_id).await
}

/// The messages of `order_id`, if `caller` may see them.
async fn messages(
    State(ApiState { pool, .. }): State<ApiState>,
    caller: Caller,
    order_id: Uuid,
) -> Result<Json<Value>, ApiError> {
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

/// Dead messages listed at once unless `limit` says otherwise, and at most.
const DEAD_PAGE: i64 = 100;
const DEAD_PAGE_MAX: i64 = 500;

#[derive(Deserialize)]
struct DeadQuery {
    limit: Option<String>,
}

#[derive(Serialize)]
struct DeadList {
    items: Vec<Attempted>,
}

/// `GET /v1/admin/messages/dead?limit=`: the dead messages, those given up
/// first first, with why.
async fn dead(State(s): State<ApiState>, Query(q): Query<DeadQuery>) -> Result<Json<DeadList>, ApiError> {
    let limit = match q.limit.as_deref() {
        None => DEAD_PAGE,
        Some(l) => l
            .parse()
            .ok()
            .filter(|l| (1..=DEAD_PAGE_MAX).contains(l))
            .ok_or_else(|| ApiError::validation(format!("limit must be between 1 and {DEAD_PAGE_MAX}")))?,
    };
    Ok(Json(DeadList {
        items: store::list_dead(&s.pool, limit).await?,
    }))
}

/// `POST /v1/admin/messages/{id}/retry`: queues a dead message again, as if
/// new (no attempts, due at once), and wakes the dispatcher.
async fn retry(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<Attempted>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::validation("the message id must be a UUID"))?;
    match store::retry_dead(&s.pool, id).await? {
        Some(queued) => {
            s.waker.wake_for(Written {
                outbox: false,
                work: true,
            });
            tracing::info!(notification.id = %id, "dead message queued again by an operator");
            Ok(Json(queued))
        }
        None => match store::status_of(&s.pool, id).await? {
            None => Err(ApiError::not_found("no such message")),
            Some(status) => Err(ApiError::conflict(
                "message_not_dead",
                format!("only a dead message can be retried; this one is {status}"),
            )),
        },
    }
}
