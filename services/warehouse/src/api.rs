//! The warehouse HTTP API: stock levels, goods received in batches, the
//! pick backlog and one order's fulfilment.

use axum::{
    extract::{Path, State},
    middleware,
    routing::get,
    Json, Router,
};
use omnisaga_auth::Scope;
use omnisaga_runtime::{aggregate::Executor, auth, batch, http::ApiError};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::{
    domain::{Fulfilment, FulfilmentAggregate},
    import::StockImport,
    store::{self, PickTask},
};

#[derive(Clone)]
struct ApiState {
    pool: PgPool,
    fulfilment: Executor<FulfilmentAggregate>,
}

/// The routes; `warehouse_topic` is where the fulfilment streams publish.
pub fn routes(pool: PgPool, warehouse_topic: String) -> Router {
    // Stock levels are what the order service's catalog shows (`stock:read`);
    // the rest is for operators.
    let stock_levels =
        Router::new()
            .route("/v1/stock", get(stock))
            .route_layer(middleware::from_fn_with_state(
                Scope::StockRead,
                auth::require_scope,
            ));
    Router::new()
        .route("/v1/pick-tasks/backlog", get(backlog))
        .route("/v1/orders/{order_id}/fulfilment", get(fulfilment))
        .route_layer(middleware::from_fn_with_state(Scope::Admin, auth::require_scope))
        .merge(stock_levels)
        .with_state(ApiState {
            pool: pool.clone(),
            fulfilment: Executor::new(warehouse_topic),
        })
        .merge(batch::routes("/v1/stock/batch", pool, StockImport))
}

async fn stock(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let rows = sqlx::query("SELECT sku, on_hand, reserved FROM stock_levels ORDER BY sku")
        .fetch_all(&s.pool)
        .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let (on_hand, reserved): (i64, i64) = (r.get(1), r.get(2));
            json!({"sku": r.get::<String, _>(0), "on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved})
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn backlog(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let counts = crate::store::backlog(&s.pool).await?;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let by_status: serde_json::Map<String, Value> = counts
        .into_iter()
        .map(|(status, n)| (status.as_str().to_owned(), json!(n)))
        .collect();
    Ok(Json(json!({"total": total, "by_status": by_status})))
}

/// `GET /v1/orders/{order_id}/fulfilment`: what the warehouse did for one order.
#[derive(Debug, Serialize)]
struct FulfilmentView {
    order_id: Uuid,
    /// `None` when no task was made (stock was unavailable).
    pick_task: Option<PickTask>,
    stock: StockView,
}

/// The order's stock, from its fulfilment stream.
#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
struct ItemView {
    sku: String,
    quantity: u32,
}

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
