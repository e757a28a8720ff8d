//! `GET /v1/catalog`: what can be ordered, at what price, and how many the
//! warehouse has available when it answers.

use axum::{extract::State, Json};
use omnisaga_auth::Scope;
use omnisaga_runtime::{auth::Caller, http::ApiError};
use serde_json::Value;

use super::{
    dto::{CatalogEntry, CatalogResponse, MoneyDto},
    ApiState,
};
use crate::store as db;

/// Every catalog SKU; `available` is `null` for all of them when the
/// warehouse is not configured or does not answer.
pub(super) async fn catalog(
    State(s): State<ApiState>,
    caller: Caller,
) -> Result<Json<CatalogResponse>, ApiError> {
    caller.require(Scope::OrdersRead)?;
    let items = db::catalog(&s.pool).await?;
    let available = match &s.config.warehouse_url {
        Some(url) => {
            let token = s.config.warehouse_token.as_ref().map(|t| t.0.as_str());
            stock_levels(&s.http, url, token).await
        }
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
async fn stock_levels(
    http: &reqwest::Client,
    base: &str,
    token: Option<&str>,
) -> Option<serde_json::Map<String, Value>> {
    let mut req = http.get(format!("{base}/v1/stock"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.ok()?;
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
