//! The warehouse HTTP API: stock levels, goods received in batches, the
//! pick backlog, one order's fulfilment, and its part of reconciliation
//! (`reconcile.rs`).

use axum::{
    extract::{Path, State},
    routing::{get, post},
    Json,
};
use omnisaga_auth::Scope;
use omnisaga_runtime::{
    aggregate::Executor,
    batch,
    http::{ApiError, ApiJson, ErrorBody},
    openapi::{self, About},
    reconcile::{ReconcileReport, ReconcileRequest},
    routes::Routes,
};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::{
    domain::{Fulfilment, FulfilmentAggregate},
    import::StockImport,
    store::{self, PickTask},
};

/// The warehouse's API document, from the handlers below and the runtime's.
#[derive(OpenApi)]
#[openapi(paths(stock, backlog, fulfilment, reconcile))]
struct ApiDoc;

/// The whole OpenAPI document of the warehouse service.
pub fn document() -> serde_json::Value {
    openapi::document(
        &About {
            service: "warehouse",
            description: "Stock levels, the pick queue and each order's fulfilment.",
            port: 8082,
        },
        ApiDoc::openapi(),
        vec![("/v1/stock/batch", batch::path_item::<StockImport>())],
    )
}

#[derive(Clone)]
struct ApiState {
    pool: PgPool,
    fulfilment: Executor<FulfilmentAggregate>,
}

/// The routes; `warehouse_topic` is where the fulfilment streams publish.
pub fn routes(pool: PgPool, warehouse_topic: String) -> Routes {
    // Stock levels are what the order service's catalog shows (`stock:read`);
    // the rest is for operators. All of it on the admin listener.
    Routes::new()
        .route("/v1/stock", Scope::StockRead, get(stock))
        .route("/v1/pick-tasks/backlog", Scope::Admin, get(backlog))
        .route("/v1/orders/{order_id}/fulfilment", Scope::Admin, get(fulfilment))
        .route("/v1/admin/reconcile", Scope::ReconcileRead, post(reconcile))
        .with_state(ApiState {
            pool: pool.clone(),
            fulfilment: Executor::new(warehouse_topic),
        })
        .merge(batch::routes("/v1/stock/batch", pool, StockImport))
}

/// Reconcile the warehouse's invariants
///
/// Checks, in one read-only snapshot, that every outbox row written before `until` is published, and that stock is conserved per SKU: reserved is what the open pick tasks hold, shipped what the shipped pick tasks held, nothing negative, nothing reserved beyond what is on hand (a state: the whole stock, whatever the window). Writes nothing.
#[utoipa::path(post, path = "/v1/admin/reconcile", tag = "operations", request_body = ReconcileRequest,
    security(("bearer" = ["reconcile:read"])),
    responses(
        (status = 200, description = "the counterexamples found", body = ReconcileReport),
        (status = 422, description = "validation_failed: the window is not in order, in the future or longer than 7 days", body = ErrorBody),
    ))]
async fn reconcile(
    State(s): State<ApiState>,
    ApiJson(req): ApiJson<ReconcileRequest>,
) -> Result<Json<ReconcileReport>, ApiError> {
    req.validate()?;
    Ok(Json(crate::reconcile::check(&s.pool, &req).await?))
}

/// Stock of every SKU.
#[derive(Debug, Serialize, ToSchema)]
struct StockLevels {
    items: Vec<StockLevel>,
}

#[derive(Debug, Serialize, ToSchema)]
struct StockLevel {
    sku: String,
    /// Units in the building.
    on_hand: i64,
    /// Units held by orders not shipped yet.
    reserved: i64,
    /// On hand less reserved: what a new order may take.
    available: i64,
}

/// Stock per SKU
///
/// What is on hand, reserved and available of every SKU (the order service's catalog shows the available units).
#[utoipa::path(get, path = "/v1/stock", tag = "stock",
    security(("bearer" = ["stock:read"])),
    responses((status = 200, description = "stock", body = StockLevels)))]
async fn stock(State(s): State<ApiState>) -> Result<Json<StockLevels>, ApiError> {
    let items = store::stock_levels(&s.pool)
        .await?
        .into_iter()
        .map(|(sku, on_hand, reserved)| StockLevel {
            sku,
            on_hand,
            reserved,
            available: on_hand - reserved,
        })
        .collect();
    Ok(Json(StockLevels { items }))
}

/// Pick tasks not yet shipped, per status.
#[derive(Debug, Serialize, ToSchema)]
struct Backlog {
    total: i64,
    /// Tasks per status: WAITING_PAYMENT, READY, PACKED.
    by_status: std::collections::BTreeMap<String, i64>,
}

/// The pick backlog
///
/// Pick tasks not yet shipped, per status.
#[utoipa::path(get, path = "/v1/pick-tasks/backlog", tag = "stock",
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "backlog", body = Backlog)))]
async fn backlog(State(s): State<ApiState>) -> Result<Json<Backlog>, ApiError> {
    let counts = crate::store::backlog(&s.pool).await?;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let by_status = counts
        .into_iter()
        .map(|(status, n)| (status.as_str().to_owned(), n))
        .collect();
    Ok(Json(Backlog { total, by_status }))
}

/// `GET /v1/orders/{order_id}/fulfilment`: what the warehouse did for one order.
#[derive(Debug, Serialize, ToSchema)]
struct FulfilmentView {
    order_id: Uuid,
    /// `None` when no task was made (stock was unavailable).
    pick_task: Option<PickTask>,
    stock: StockView,
}

/// The order's stock, from its fulfilment stream.
#[derive(Debug, Serialize, ToSchema)]
struct StockView {
    /// Whether its items were reserved (still so unless released or shipped).
    reserved: bool,
    /// What was reserved.
    items: Vec<ItemView>,
    /// The stock could not cover it: nothing was reserved.
    unavailable: bool,
    /// The reservation was given back (the order was cancelled).
    released: bool,
    /// The goods left the building.
    shipped: bool,
}

#[derive(Debug, Serialize, ToSchema)]
struct ItemView {
    sku: String,
    #[schema(minimum = 1)]
    quantity: u32,
}

/// One order's fulfilment
///
/// What the warehouse did for one order: its pick task and its stock.
#[utoipa::path(get, path = "/v1/orders/{order_id}/fulfilment", tag = "stock",
    params(("order_id" = Uuid, Path, description = "the order's id")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "the order's fulfilment", body = FulfilmentView),
        (status = 404, description = "not_found: the warehouse knows nothing of this order", body = ErrorBody),
        (status = 422, description = "validation_failed: order_id is not a UUID", body = ErrorBody),
    ))]
async fn fulfilment(
    State(s): State<ApiState>,
    Path(order_id): Path<String>,
) -> Result<Json<FulfilmentView>, ApiError> {
    let id = Uuid::parse_str(&order_id).map_err(|_| ApiError::validation("order_id is not a UUID"))?;
    let pick_task = store::pick_task(&s.pool, id).await?;
    let mut conn = s.pool.acquire().await?;
    let loaded = s
        .fulfilment
        .load(&mut conn, &id.to_string())
        .await
        .map_err(ApiError::internal)?;
    if loaded.version == 0 && pick_task.is_none() {
        return Err(ApiError::not_found(format!(
            "the warehouse knows nothing of order {order_id}"
        )));
    }
    Ok(Json(FulfilmentView {
        order_id: id,
        pick_task,
        stock: stock_view(&loaded.state),
    }))
}

fn stock_view(state: &Fulfilment) -> StockView {
    let items = state.reserved.iter().flatten().map(|i| ItemView {
        sku: i.sku.clone(),
        quantity: i.quantity,
    });
    StockView {
        reserved: state.reserved.is_some(),
        items: items.collect(),
        unavailable: state.unavailable,
        released: state.released,
        shipped: state.shipped,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_checked_in_openapi_document_is_the_one_the_code_generates() {
        omnisaga_runtime::testing::openapi::assert_checked_in("warehouse", &super::document());
    }
}
