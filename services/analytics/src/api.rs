//! The analytics API: `GET /v1/summary` (stage counts, fulfilment time
//! percentiles and the payment success share, overall and per channel),
//! `GET /v1/orders/{id}/stages` (one order's stage events) and the
//! dashboard ([`crate::dashboard`]).

use axum::{
    extract::{Path, State},
    middleware,
    routing::get,
    Json, Router,
};
use omnisaga_auth::Scope;
use omnisaga_runtime::{auth, http::ApiError};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    config::Config,
    dashboard,
    domain::{success_share, to_tenths, Stage},
    store::{self, ChannelCounts, Percentiles},
};

/// The definition shown with every payment success share.
pub const SUCCESS_SHARE_DEFINITION: &str =
    "Of the orders that had a payment answer, the share with an authorised \
     payment; an order declined and then paid counts as a success. Voided authorisations (the order was \
     cancelled after payment) are counted apart and still count as successes.";

#[derive(Clone)]
pub struct ApiState {
    pub pool: PgPool,
    pub config: Config,
}

pub fn routes(pool: PgPool, config: Config) -> Router {
    Router::new()
        .route("/v1/summary", get(summary))
        .route("/v1/orders/{id}/stages", get(order_stages))
        .route_layer(middleware::from_fn_with_state(
            Scope::AnalyticsRead,
            auth::require_scope,
        ))
        // Open (see `App::run_until_stopped`): aggregate figures only.
        .route("/dashboard", get(dashboard::page))
        .with_state(ApiState { pool, config })
}

async fn summary(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let mut db = store::snapshot(&s.pool).await?;
    let channels = store::channel_counts(&mut db).await?;
    let all = totals(&channels);
    let (authorized, failed) = store::payment_answers(&mut db).await?;
    let mut by_channel = Vec::with_capacity(channels.len());
    for c in &channels {
        by_channel.push(json!({
            "channel": c.channel,
            "orders": orders(c),
            "payments": order_payments(c),
            "fulfilment_ms": {
                "placed_to_shipped": percentiles(store::time_to(&mut db, Stage::Shipped, Some(&c.channel)).await?),
            },
        }));
    }
    let mut payments = order_payments(&all);
    payments["authorized"] = json!(authorized);
    payments["failed"] = json!(failed);
    Ok(Json(json!({
        "orders": orders(&all),
        "payments": payments,
        "fulfilment_ms": {
            "placed_to_ready_for_shipment": percentiles(store::time_to(&mut db, Stage::ReadyForShipment, None).await?),
            "placed_to_shipped": percentiles(store::time_to(&mut db, Stage::Shipped, None).await?),
        },
        "channels": by_channel,
    })))
}

/// Every channel's counts added up.
pub fn totals(channels: &[ChannelCounts]) -> ChannelCounts {
    channels
        .iter()
        .fold(ChannelCounts::default(), |t, c| ChannelCounts {
            channel: "all".into(),
            placed: t.placed + c.placed,
            paid: t.paid + c.paid,
            ready_for_shipment: t.ready_for_shipment + c.ready_for_shipment,
            shipped: t.shipped + c.shipped,
            cancelled: t.cancelled + c.cancelled,
            authorized: t.authorized + c.authorized,
            declined: t.declined + c.declined,
            voided: t.voided + c.voided,
        })
}

fn orders(c: &ChannelCounts) -> Value {
    json!({
        "placed": c.placed,
        "paid": c.paid,
        "ready_for_shipment": c.ready_for_shipment,
        "shipped": c.shipped,
        "cancelled": c.cancelled,
    })
}

/// The orders' payment outcomes and the success share.
fn order_payments(c: &ChannelCounts) -> Value {
    json!({
        "orders_authorized": c.authorized,
        "orders_declined": c.declined,
        "orders_voided": c.voided,
        "success_share": success_share(c.authorized, c.declined),
    })
}

/// p50/p95/p99/max of the milliseconds from placement, to a tenth, over finished orders.
fn percentiles(p: Percentiles) -> Value {
    let f = |v: Option<f64>| v.map(to_tenths);
    json!({"count": p.count, "p50": f(p.p50), "p95": f(p.p95), "p99": f(p.p99), "max": f(p.max)})
}

async fn order_stages(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let unknown = || ApiError::not_found("analytics has no event of this order");
    let order_id = Uuid::parse_str(&id).map_err(|_| unknown())?;
    let mut db = s.pool.acquire().await?;
    let order = store::order_stages(&mut db, order_id)
        .await?
        .ok_or_else(unknown)?;
    let stages: Vec<Value> = order
        .stages
        .iter()
        .map(|e| json!({"stage": e.stage, "at": e.at, "seconds_since_previous": e.seconds_since_previous}))
        .collect();
    Ok(Json(json!({
        "order_id": order_id,
        "channel": order.channel,
        "payment_outcome": order.payment_outcome,
        "stages": stages,
    })))
}
