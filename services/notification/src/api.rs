//! `GET /v1/orders/{order_id}/notifications`: the messages an order's
//! customer got, for that customer (`orders:read`) and for operators
//! (`admin`); its deprecated form `GET /v1/notifications?order_id=`, the
//! same with `Deprecation` and `Sunset` headers until it is retired; and for
//! operators only, the messages the channel refused until they were dead
//! (`GET /v1/admin/messages/dead`) and their retry
//! (`POST /v1/admin/messages/{id}/retry`), and its part of reconciliation
//! (`POST /v1/admin/reconcile`, `reconcile.rs`).

use axum::{
    extract::{Path, Query, State},
    routing::{get, post},
    Json,
};
use chrono::{DateTime, Utc};
use omnisaga_auth::Scope;
use omnisaga_runtime::{
    auth::Caller,
    deprecation::{self, Deprecation},
    http::{ApiError, ApiJson, ErrorBody},
    openapi::{self, About},
    reconcile::{ReconcileReport, ReconcileRequest},
    routes::Routes,
    work::OutboxWaker,
};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::{
    application::{self, Retried},
    store::{self, Attempted},
};

/// Notification's API document, from the handlers below and the runtime's.
#[derive(OpenApi)]
#[openapi(paths(list, list_by_query, dead, retry, reconcile))]
struct ApiDoc;

/// The whole OpenAPI document of the notification service.
pub fn document() -> serde_json::Value {
    let mut doc = openapi::document(
        &About {
            service: "notification",
            description: "The chat messages sent to customers.",
            port: 8083,
        },
        ApiDoc::openapi(),
        vec![],
    );
    LIST_BY_QUERY.document(
        &mut doc["paths"]["/v1/notifications"]["get"],
        "/v1/orders/{order_id}/notifications",
    );
    doc
}

#[derive(Clone)]
struct ApiState {
    pool: PgPool,
    /// Wakes the dispatcher when an operator queues a message again.
    waker: OutboxWaker,
}

pub fn routes(pool: PgPool, waker: OutboxWaker) -> Routes {
    Routes::new()
        .route(
            "/v1/orders/{order_id}/notifications",
            Scope::OrdersRead,
            get(list),
        )
        .route("/v1/notifications", Scope::OrdersRead, get(list_by_query))
        .route("/v1/admin/messages/dead", Scope::Admin, get(dead))
        .route("/v1/admin/messages/{id}/retry", Scope::Admin, post(retry))
        .route("/v1/admin/reconcile", Scope::ReconcileRead, post(reconcile))
        .with_state(ApiState { pool, waker })
}

/// Reconcile the notification service's invariants
///
/// Checks, in one read-only snapshot, that every outbox row written before `until` is published, and that every order of `shipped` (the order service's list of the window) has its 'shipped' message sent. Writes nothing.
#[utoipa::path(post, path = "/v1/admin/reconcile", tag = "operations", request_body = ReconcileRequest,
    security(("bearer" = ["reconcile:read"])),
    responses(
        (status = 200, description = "the counterexamples found", body = ReconcileReport),
        (status = 422, description = "validation_failed: the window is not in order, in the future or longer than 7 days, or more than 5000 shipped orders", body = ErrorBody),
    ))]
async fn reconcile(
    State(s): State<ApiState>,
    ApiJson(req): ApiJson<ReconcileRequest>,
) -> Result<Json<ReconcileReport>, ApiError> {
    req.validate()?;
    Ok(Json(crate::reconcile::check(&s.pool, &req).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// The order whose messages to list (required).
    #[param(value_type = Uuid)]
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

/// An order's messages (deprecated)
///
/// The first form of GET /v1/orders/{order_id}/notifications: the same answers, with Deprecation, Sunset and a Link to the successor; 410 gone after the sunset.
#[utoipa::path(get, path = "/v1/notifications", tag = "notifications", params(ListQuery),
    security(("bearer" = ["orders:read"])),
    responses(
        (status = 200, description = "the order's messages, oldest first", body = Messages),
        (status = 404, description = "not_found: no such order, or another customer's", body = ErrorBody),
        (status = 422, description = "validation_failed: order_id missing or not a UUID", body = ErrorBody),
    ))]
async fn list_by_query(
    state: State<ApiState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<(deprecation::Headers, Json<Messages>), ApiError> {
    let order_id = q
        .order_id
        .as_deref()
        .ok_or_else(|| ApiError::validation("the order_id query parameter is required"))?;
    let order_id = Uuid::parse_str(order_id).map_err(|_| ApiError::validation("order_id must be a UUID"))?;
    let headers = LIST_BY_QUERY.call(
        omnisaga_runtime::clock::now(),
        format!("/v1/orders/{order_id}/notifications"),
    )?;
    Ok((headers, messages(state, caller, order_id).await?))
}

/// An order's messages
///
/// The messages an order's customer was sent or is to be sent, oldest first: the customer's own orders (orders:read), any order for operators (admin).
#[utoipa::path(get, path = "/v1/orders/{order_id}/notifications", tag = "notifications",
    params(("order_id" = Uuid, Path, description = "the order's id")),
    security(("bearer" = ["orders:read"])),
    responses(
        (status = 200, description = "the order's messages, oldest first", body = Messages),
        (status = 404, description = "not_found: no such order, or another customer's", body = ErrorBody),
    ))]
async fn list(
    state: State<ApiState>,
    caller: Caller,
    Path(order_id): Path<String>,
) -> Result<Json<Messages>, ApiError> {
    let order_id = Uuid::parse_str(&order_id).map_err(|_| ApiError::not_found("no such order"))?;
    messages(state, caller, order_id).await
}

/// An order's messages.
#[derive(Debug, Serialize, ToSchema)]
struct Messages {
    items: Vec<Message>,
}

/// One message to a customer.
#[derive(Debug, Serialize, ToSchema)]
struct Message {
    notification_id: Uuid,
    order_id: Uuid,
    /// What it tells: order_created, payment_confirmed, payment_failed, payment_delayed, order_delayed, ready_for_shipment, shipped or order_cancelled.
    #[schema(
        pattern = "^(order_created|payment_confirmed|payment_failed|payment_delayed|order_delayed|ready_for_shipment|shipped|order_cancelled)$"
    )]
    template: String,
    /// The text as sent; null until sent.
    text: Option<String>,
    /// The channel it went by; null until sent.
    channel: Option<String>,
    /// QUEUED, SENT, DEAD (the channel refused it too often) or STALE (not
    /// sent: a later message made it stale, as "payment confirmed" does a
    /// "payment delayed" notice still queued).
    #[schema(pattern = "^(QUEUED|SENT|DEAD|STALE)$")]
    status: String,
    /// The event it tells of; empty for a sent message a rebuild added back
    /// (its `NotificationSent` does not say).
    source_event_type: String,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
}

/// The messages of `order_id`, if `caller` may see them.
async fn messages(
    State(ApiState { pool, .. }): State<ApiState>,
    caller: Caller,
    order_id: Uuid,
) -> Result<Json<Messages>, ApiError> {
    // A customer sees their own orders' messages; another's order is no
    // such order, the same as one this service never heard of.
    if !caller.is_admin() {
        match store::customer_of(&pool, order_id).await? {
            Some(customer) if caller.owns(&customer) => {}
            _ => return Err(ApiError::not_found("no such order")),
        }
    }
    let items = store::list_for_order(&pool, order_id)
        .await?
        .into_iter()
        .map(|n| Message {
            notification_id: n.notification_id,
            order_id,
            template: n.template,
            text: n.text,
            channel: n.channel,
            status: n.status,
            source_event_type: n.source_event_type,
            created_at: n.created_at,
            sent_at: n.sent_at,
        })
        .collect();
    Ok(Json(Messages { items }))
}

/// Dead messages listed at once unless `limit` says otherwise, and at most.
const DEAD_PAGE: i64 = 100;
const DEAD_PAGE_MAX: i64 = 500;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DeadQuery {
    /// At most this many, 1 to 500 (100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

/// Dead messages, those given up first first.
#[derive(Serialize, ToSchema)]
struct DeadList {
    items: Vec<Attempted>,
}

/// Dead messages
///
/// The messages the channel refused NOTIFICATION_MAX_ATTEMPTS times, those given up first first, with the last refusal; every other message went on.
#[utoipa::path(get, path = "/v1/admin/messages/dead", tag = "notifications", params(DeadQuery),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "the dead messages", body = DeadList),
        (status = 422, description = "validation_failed: limit out of range", body = ErrorBody),
    ))]
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

/// Retry a dead message
///
/// Queues a dead message again, as if new (no attempts, due at once).
#[utoipa::path(post, path = "/v1/admin/messages/{id}/retry", tag = "notifications",
    params(("id" = Uuid, Path, description = "the message's notification id")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "queued again", body = Attempted),
        (status = 404, description = "not_found: no such message", body = ErrorBody),
        (status = 409, description = "message_not_dead: only a dead message can be retried", body = ErrorBody),
        (status = 422, description = "validation_failed: the id is not a UUID", body = ErrorBody),
    ))]
async fn retry(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<Attempted>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::validation("the message id must be a UUID"))?;
    match application::retry_dead(&s.pool, &s.waker, id).await? {
        Retried::Queued(queued) => Ok(Json(queued)),
        Retried::Unknown => Err(ApiError::not_found("no such message")),
        Retried::NotDead(status) => Err(ApiError::conflict(
            "message_not_dead",
            format!("only a dead message can be retried; this one is {status}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_checked_in_openapi_document_is_the_one_the_code_generates() {
        omnisaga_runtime::testing::openapi::assert_checked_in("notification", &super::document());
    }
}
