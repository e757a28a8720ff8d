//! Goods received, imported in batches (`POST /v1/stock/batch`, `omnisaga
//! stock import FILE`): a row per SKU, `sku` and `quantity`, the units
//! received, added to what is on hand. A SKU the warehouse has not stocked
//! before starts at the quantity. See `omnisaga_runtime::batch` for how a
//! batch is read, checked and applied (whole or not at all, once per id).
//! It needs `stock:import`, not `admin`: the nightly import (a CronJob)
//! keeps a token that can import stock and do nothing else.

use omnisaga_runtime::batch::{Importer, Row, RowError};
use sqlx::PgConnection;

/// Most units one row may add.
pub const MAX_QUANTITY: i64 = 1_000_000_000;

/// Stock receipts.
pub struct StockImport;

/// A row of a stock import, as the API documents it ([`StockImport::check`]
/// holds a row to the same bounds).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct StockRow {
    #[schema(min_length = 1, max_length = 64)]
    sku: String,
    /// Units received, added to what is on hand.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    quantity: i64,
}

/// One checked row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub sku: String,
    pub quantity: i64,
}

impl Importer for StockImport {
    type Item = Receipt;
    type Row = StockRow;
    const KIND: &'static str = "stock";
    const DESCRIPTION: &'static str = "A row per SKU with sku and quantity, the units received, added to what is on hand; a SKU not stocked before starts at its quantity.";
    const FIELDS: &'static [&'static str] = &["sku", "quantity"];
    /// The nightly import's token holds this scope alone (infra/k8s/stock-import.yaml).
    const SCOPE: omnisaga_auth::Scope = omnisaga_auth::Scope::StockImport;

    fn check(&self, row: &Row) -> Result<Receipt, Vec<RowError>> {
        match (row.text("sku", 64), row.integer("quantity", 1..=MAX_QUANTITY)) {
            (Ok(sku), Ok(quantity)) => Ok(Receipt { sku, quantity }),
            (sku, quantity) => Err(sku.err().into_iter().chain(quantity.err()).collect()),
        }
    }

    fn key<'a>(&self, item: &'a Receipt) -> Option<&'a str> {
        Some(&item.sku)
    }

    async fn apply(&self, tx: &mut PgConnection, items: &[Receipt]) -> Result<(), sqlx::Error> {
        let received: Vec<(&str, i64)> = items.iter().map(|r| (r.sku.as_str(), r.quantity)).collect();
        crate::store::receive_stock(tx, &received).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_checked_to_the_bounds_the_api_documents() {
        let edge = serde_json::json!({"sku": "S".repeat(64), "quantity": MAX_QUANTITY});
        omnisaga_runtime::testing::documented_row_bounds_hold(&StockImport, edge).unwrap();
    }
}
