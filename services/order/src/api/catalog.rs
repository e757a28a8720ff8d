//! `GET /v1/catalog`: what can be ordered, at what price, and how many the
//! warehouse has available when it answers; `POST /v1/catalog/batch`:
//! entries added and changed in batches.

use axum::{extract::State, Json};
use omnisaga_runtime::{
    batch::{Importer, Row, RowError},
    http::ApiError,
};
use serde_json::Value;
use sqlx::PgConnection;

use super::{
    dto::{CatalogEntry, CatalogResponse, MoneyDto},
    ApiState,
};
use crate::store as db;

/// The catalog
///
/// Every SKU with its name, price and the units available; available is null for all of them when the warehouse does not answer.
#[utoipa::path(get, path = "/v1/catalog", tag = "orders",
    security(("bearer" = ["orders:read"])),
    responses((status = 200, description = "the catalog", body = CatalogResponse)))]
pub(super) async fn catalog(State(s): State<ApiState>) -> Result<Json<CatalogResponse>, ApiError> {
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
    let resp = omnisaga_runtime::http_client::send_traced(http, req.build().ok()?, "/v1/stock")
        .await
        .ok()?;
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

/// Catalog entries imported in batches (`POST /v1/catalog/batch`,
/// `omnisaga catalog import FILE`): a row per SKU with `sku`, `name`,
/// `unit_price_minor` and `currency`; a SKU in the catalog gets the row's
/// name and price, a new one is added. Nothing is removed. See
/// `omnisaga_runtime::batch` for how a batch is read, checked and applied.
pub struct CatalogImport;

/// Highest unit price a row may set, in minor units.
pub const MAX_UNIT_PRICE_MINOR: i64 = 100_000_000;

/// A row of a catalog import, as the API documents it
/// ([`CatalogImport::check`] holds a row to the same bounds).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CatalogRow {
    #[schema(min_length = 1, max_length = 64)]
    sku: String,
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// The unit price in minor units.
    #[schema(minimum = 1, maximum = 100_000_000)]
    unit_price_minor: i64,
    /// ISO 4217.
    #[schema(pattern = "^[A-Z]{3}$")]
    currency: String,
}

impl Importer for CatalogImport {
    type Item = db::CatalogItem;
    type Row = CatalogRow;
    const KIND: &'static str = "catalog";
    const DESCRIPTION: &'static str = "A row per SKU with sku, name, unit_price_minor and currency; a SKU in the catalog gets the row's name and price, a new one is added. Prices of orders already placed do not change.";
    const FIELDS: &'static [&'static str] = &["sku", "name", "unit_price_minor", "currency"];

    fn check(&self, row: &Row) -> Result<db::CatalogItem, Vec<RowError>> {
        let currency = row.text("currency", 3).and_then(|c| {
            if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) {
                Ok(c)
            } else {
                Err(RowError::new(
                    row.line,
                    "currency",
                    "must be an ISO 4217 code: three capital letters",
                ))
            }
        });
        match (
            row.text("sku", 64),
            row.text("name", 200),
            row.integer("unit_price_minor", 1..=MAX_UNIT_PRICE_MINOR),
            currency,
        ) {
            (Ok(sku), Ok(name), Ok(unit_price_minor), Ok(currency)) => Ok(db::CatalogItem {
                sku,
                name,
                unit_price_minor,
                currency,
            }),
            (sku, name, price, currency) => Err([sku.err(), name.err(), price.err(), currency.err()]
                .into_iter()
                .flatten()
                .collect()),
        }
    }

    fn key<'a>(&self, item: &'a db::CatalogItem) -> Option<&'a str> {
        Some(&item.sku)
    }

    async fn apply(&self, tx: &mut PgConnection, items: &[db::CatalogItem]) -> Result<(), sqlx::Error> {
        db::upsert_catalog_batch(tx, items).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_checked_to_the_bounds_the_api_documents() {
        let edge = serde_json::json!({
            "sku": "S".repeat(64),
            "name": "N".repeat(200),
            "unit_price_minor": MAX_UNIT_PRICE_MINOR,
            "currency": "EUR",
        });
        omnisaga_runtime::testing::documented_row_bounds_hold(&CatalogImport, edge).unwrap();
    }
}
