//! The analytics API: `GET /v1/summary` (stage counts, fulfilment time
//! percentiles and the payment success share, overall and per channel, of
//! every order or those placed in a window), `GET /v1/orders/{id}/stages`
//! (one order's stage events), the order facts of a window as CSV
//! ([`export`]), a customer's payments ([`history`]) and the
//! dashboard ([`crate::dashboard`]).

use axum::{
    extract::{FromRef, Path, Query, State},
    middleware,
    routing::get,
    Json,
};
use omnisaga_auth::Scope;
use omnisaga_runtime::{
    cached::{cached, Cache},
    http::{ApiError, ErrorBody},
    openapi::{self, About},
    routes::Routes,
};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

mod export;
mod history;

use crate::{
    config::Config,
    dashboard,
    domain::{success_share, to_tenths, Stage},
    store::{self, totals, ChannelCounts, Percentiles as Measured},
    window::WindowQuery,
};

/// Analytics' API document, from the handlers below and the runtime's.
#[derive(OpenApi)]
#[openapi(paths(
    summary,
    order_stages,
    export::orders_csv,
    history::customer_payments,
    dashboard::page
))]
struct ApiDoc;

/// The whole OpenAPI document of the analytics service.
pub fn document() -> serde_json::Value {
    openapi::document(
        &About {
            service: "analytics",
            description: "Saga stage counts, fulfilment time and payment success share, overall and per channel, of every order or a window's; the order facts of a window as CSV; one order's stages; each customer's payments; the dashboard.",
            port: 8084,
        },
        ApiDoc::openapi(),
        vec![],
    )
}

#[derive(Clone)]
pub struct ApiState {
    pub pool: PgPool,
    pub config: Config,
}

/// The dashboard reads the pool and the settings of the routes' state.
impl FromRef<ApiState> for PgPool {
    fn from_ref(s: &ApiState) -> Self {
        s.pool.clone()
    }
}

impl FromRef<ApiState> for Config {
    fn from_ref(s: &ApiState) -> Self {
        s.config.clone()
    }
}

pub fn routes(pool: PgPool, config: Config) -> Routes {
    Routes::new()
        .route("/v1/summary", Scope::AnalyticsRead, get(summary))
        .route("/v1/orders/{id}/stages", Scope::AnalyticsRead, get(order_stages))
        .route(
            "/v1/exports/orders.csv",
            Scope::AnalyticsRead,
            get(export::orders_csv),
        )
        .route(
            "/v1/customers/{id}/payments",
            Scope::AnalyticsRead,
            get(history::customer_payments),
        )
        // Open (see `App::run_until_stopped`): aggregate figures only.
        // A database query open to anyone: one answer a second, shared.
        .open(
            "/dashboard",
            get(dashboard::page).layer(middleware::from_fn_with_state(Cache::new(), cached)),
        )
        .with_state(ApiState { pool, config })
}

/// The figures of all orders, and of each channel's.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    orders: StageCounts,
    payments: AllPayments,
    fulfilment_ms: Fulfilment,
    /// The same figures for each channel's orders.
    channels: Vec<ChannelSummary>,
}

/// Orders that reached each stage.
#[derive(Serialize, ToSchema)]
pub struct StageCounts {
    #[schema(minimum = 0)]
    placed: i64,
    #[schema(minimum = 0)]
    paid: i64,
    #[schema(minimum = 0)]
    ready_for_shipment: i64,
    #[schema(minimum = 0)]
    shipped: i64,
    #[schema(minimum = 0)]
    cancelled: i64,
}

/// The orders' payment outcomes and the success share.
#[derive(Serialize, ToSchema)]
pub struct OrderPayments {
    /// Orders with an authorised payment.
    #[schema(minimum = 0)]
    orders_authorized: i64,
    /// Orders whose every payment attempt so far failed.
    #[schema(minimum = 0)]
    orders_declined: i64,
    /// Orders whose authorisation was voided after a cancellation.
    #[schema(minimum = 0)]
    orders_voided: i64,
    /// Of the orders that had a payment answer, the share with an authorised payment; an order declined and then paid counts as a success. Voided authorisations are counted apart (orders_voided) and still count as successes. Null before the first answer.
    #[schema(minimum = 0, maximum = 1)]
    success_share: Option<f64>,
}

/// The orders' payment outcomes, and every attempt's.
#[derive(Serialize, ToSchema)]
pub struct AllPayments {
    #[serde(flatten)]
    orders: OrderPayments,
    /// Payment attempts authorised.
    #[schema(minimum = 0)]
    authorized: i64,
    /// Payment attempts declined.
    #[schema(minimum = 0)]
    failed: i64,
}

/// Milliseconds from placement to a stage, over the orders that reached it.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Fulfilment {
    placed_to_ready_for_shipment: Percentiles,
    placed_to_shipped: Percentiles,
}

/// One channel's figures.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelSummary {
    /// mobile, web, pos, marketplace, unspecified, or unknown: orders whose placement analytics has not received yet.
    #[schema(pattern = "^(mobile|web|pos|marketplace|unspecified|unknown)$")]
    channel: String,
    orders: StageCounts,
    payments: OrderPayments,
    fulfilment_ms: ChannelFulfilment,
}

#[derive(Serialize, ToSchema)]
pub struct ChannelFulfilment {
    placed_to_shipped: Percentiles,
}

/// p50, p95, p99 and max to a tenth of a millisecond; null with no order.
#[derive(Serialize, ToSchema)]
pub struct Percentiles {
    count: i64,
    p50: Option<f64>,
    p95: Option<f64>,
    p99: Option<f64>,
    max: Option<f64>,
}

/// Summary
///
/// Counts per stage, fulfilment percentiles (ms), payment success share; overall and per channel. With from and/or to, the figures of the orders placed in that window (at or after from, before to), whenever their later stages came; without, of every order, those whose placement analytics has not received yet included (channel unknown).
#[utoipa::path(get, path = "/v1/summary", tag = "analytics", params(WindowQuery),
    security(("bearer" = ["analytics:read"])),
    responses(
        (status = 200, description = "the figures", body = Summary),
        (status = 422, description = "validation_failed (details.fields): to is not after from", body = ErrorBody),
    ))]
async fn summary(State(s): State<ApiState>, Query(q): Query<WindowQuery>) -> Result<Json<Summary>, ApiError> {
    let window = q.window()?;
    let w = &window;
    let mut db = store::snapshot(&s.pool).await?;
    let channels = store::channel_counts(&mut db, w).await?;
    let all = totals(&channels);
    let (authorized, failed) = store::payment_answers(&mut db, w).await?;
    let mut by_channel = Vec::with_capacity(channels.len());
    for c in &channels {
        by_channel.push(ChannelSummary {
            channel: c.channel.clone(),
            orders: orders(c),
            payments: order_payments(c),
            fulfilment_ms: ChannelFulfilment {
                placed_to_shipped: percentiles(
                    store::time_to(&mut db, Stage::Shipped, Some(&c.channel), w).await?,
                ),
            },
        });
    }
    Ok(Json(Summary {
        orders: orders(&all),
        payments: AllPayments {
            orders: order_payments(&all),
            authorized,
            failed,
        },
        fulfilment_ms: Fulfilment {
            placed_to_ready_for_shipment: percentiles(
                store::time_to(&mut db, Stage::ReadyForShipment, None, w).await?,
            ),
            placed_to_shipped: percentiles(store::time_to(&mut db, Stage::Shipped, None, w).await?),
        },
        channels: by_channel,
    }))
}

fn orders(c: &ChannelCounts) -> StageCounts {
    StageCounts {
        placed: c.placed,
        paid: c.paid,
        ready_for_shipment: c.ready_for_shipment,
        shipped: c.shipped,
        cancelled: c.cancelled,
    }
}

fn order_payments(c: &ChannelCounts) -> OrderPayments {
    OrderPayments {
        orders_authorized: c.authorized,
        orders_declined: c.declined,
        orders_voided: c.voided,
        success_share: success_share(c.authorized, c.declined),
    }
}

/// p50/p95/p99/max of the milliseconds from placement, to a tenth, over finished orders.
fn percentiles(p: Measured) -> Percentiles {
    let f = |v: Option<f64>| v.map(to_tenths);
    Percentiles {
        count: p.count,
        p50: f(p.p50),
        p95: f(p.p95),
        p99: f(p.p99),
        max: f(p.max),
    }
}

/// One order's stages.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderStages {
    order_id: Uuid,
    channel: String,
    /// authorized, declined or none (no answer yet).
    #[schema(pattern = "^(authorized|declined|none)$")]
    payment_outcome: String,
    stages: Vec<StageAt>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageAt {
    /// placed, paid, ready_for_shipment, shipped, payment_declined, payment_voided or cancelled.
    #[schema(
        pattern = "^(placed|paid|ready_for_shipment|shipped|payment_declined|payment_voided|cancelled)$"
    )]
    stage: String,
    at: chrono::DateTime<chrono::Utc>,
    /// Since the stage before; null for the first.
    #[schema(minimum = 0)]
    seconds_since_previous: Option<f64>,
}

/// One order's stages
///
/// One order's stage events as analytics recorded them, with the seconds since the previous one.
#[utoipa::path(get, path = "/v1/orders/{id}/stages", tag = "analytics",
    params(("id" = Uuid, Path, description = "the order's id")),
    security(("bearer" = ["analytics:read"])),
    responses(
        (status = 200, description = "the order's stages", body = OrderStages),
        (status = 404, description = "not_found: analytics has no event of this order", body = ErrorBody),
    ))]
async fn order_stages(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<OrderStages>, ApiError> {
    let unknown = || ApiError::not_found("analytics has no event of this order");
    let order_id = Uuid::parse_str(&id).map_err(|_| unknown())?;
    let mut db = s.pool.acquire().await?;
    let order = store::order_stages(&mut db, order_id)
        .await?
        .ok_or_else(unknown)?;
    Ok(Json(OrderStages {
        order_id,
        channel: order.channel,
        payment_outcome: order.payment_outcome,
        stages: order
            .stages
            .into_iter()
            .map(|e| StageAt {
                stage: e.stage,
                at: e.at,
                seconds_since_previous: e.seconds_since_previous,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_checked_in_openapi_document_is_the_one_the_code_generates() {
        omnisaga_runtime::testing::openapi::assert_checked_in("analytics", &super::document());
    }
}
