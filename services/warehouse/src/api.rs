//! The warehouse HTTP API: stock levels and the pick backlog.

use axum::{extract::State, routing::get, Json, Router};
use omnisaga_runtime::http::ApiError;
use serde_json::{json, Value};
use sqlx::{PgPool, Row};

pub fn routes(pool: PgPool) -> Router {
    Router::new()
        .route("/v1/stock", get(stock))
        .route("/v1/pick-tasks/backlog", get(backlog))
        .with_state(pool)
}

async fn stock(State(pool): State<PgPool>) -> Result<Json<Value>, ApiError> {
    let rows = sqlx::query("SELECT sku, on_hand, reserved FROM stock_levels ORDER BY sku")
        .fetch_all(&pool)
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

async fn backlog(State(pool): State<PgPool>) -> Result<Json<Value>, ApiError> {
    let counts = crate::store::backlog(&pool).await?;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let by_status: serde_json::Map<String, Value> = counts
        .into_iter()
        .map(|(status, n)| (status.as_str().to_owned(), json!(n)))
        .collect();
    Ok(Json(json!({"total": total, "by_status": by_status})))
}
