//! `GET /v1/catalog`: what can be ordered, at what price, and how many the
//! warehouse has available when it answers.

use axum::{extract::State, Json};
use omnisaga_runtime::http::ApiError;
use serde_json::Value;

use super::{
    dto::{CatalogEntry, CatalogResponse, MoneyDto},
    ApiState,
};
use crate::store as db;

/// Every catalog SKU; `available` is `null` for all of them when the
/// warehouse is not configured or does not answer.
pub(super) async fn catalog(State(s): State<ApiState>) -> Result<Json<CatalogResponse>, ApiError> {
    let items = db::catalog(&s.pool).await?;
    let available = match &s.config.warehouse_url {
        Some(url) => stock_levels(&s.http, url).await,
        None => None,
    };
    let items = items
        .into_iter()
        .map(|i| CatalogEntry {
            available: available
                .as_ref()
                .map(|a| a.get(&i.sku).and_then(Value::as_i64).unwrap_or(0)),
            name: i.name,
            sku: i.sku,
            unit_price: MoneyDto {
                currency: i.currency,
                minor_units: i.unit_price_minor,
            },
        })
        .collect();
    Ok(Json(CatalogResponse { items }))
}

/// Stock per SKU from the warehouse; `None` (unknown) when it does not answer in time.
async fn stock_levels(http: &reqwest::Client, base: &str) -> Option<serde_json::Map<String, Value>> {
    let resp = http.get(format!("{base}/v1/stock")).send().await.ok()?;
    let body: Value = resp.error_for_status().ok()?.json().await.ok()?;
    let mut out = serde_json::Map::new();
    for item in body.get("items")?.as_array()? {
        out.insert(
            item.get("sku")?.as_str()?.to_owned(),
            item.get("available")?.clone(),
        );
    }
    Some(out)
}
