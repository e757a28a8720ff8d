//! The log (`received_events`) as the source a rebuild folds the star
//! schema from (`crate::projection`), and which rows of the schema its
//! envelopes decide.
//!
//! The log keeps envelopes since migration 1003, which noted what the
//! schema held then: the orders, days and SKUs (`unkept_orders`,
//! `unkept_days`, `unkept_skus`). Their rows are outside what a rebuild
//! compares or touches ([`TABLES`]' `rows`), the rows of an unkept order's
//! later events too, and [`leave_out_unkept`] keeps them out of its copies.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use omnisaga_runtime::projection::{Source, Table};
use sqlx::PgConnection;
use uuid::Uuid;

use super::Received;

/// `received_events`, with its position and envelope.
pub const SOURCE: Source = Source {
    table: "received_events",
    position: "log_position",
    envelope: "envelope",
};

/// A row of an order known before the log kept envelopes: its rows are not
/// the events' alone. (Migration 1003's functions, one look-up by primary
/// key per row, and bound to the live `unkept_*` tables whichever schema
/// comes first on the search path.)
const KEPT_ORDER: &str = "NOT public.unkept_order(order_id)";

/// The tables, each before those that refer to it; every column but
/// `fact_orders.payment_outcome` (generated from the others).
pub const TABLES: &[Table] = &[
    Table {
        name: "dim_day",
        key: &["day"],
        columns: &[
            "day",
            "year",
            "quarter",
            "month",
            "iso_year",
            "iso_week",
            "iso_weekday",
            "is_weekend",
        ],
        rows: Some("NOT public.unkept_day(day)"),
    },
    Table {
        name: "dim_sku",
        key: &["sku"],
        columns: &["sku", "name"],
        rows: Some("NOT public.unkept_sku(sku)"),
    },
    Table {
        name: "fact_orders",
        key: &["order_id"],
        columns: &[
            "order_id",
            "customer_id",
            "channel",
            "placed_day",
            "placed_at",
            "paid_at",
            "ready_at",
            "shipped_at",
            "cancelled_at",
            "payment_failures",
            "payment_voids",
            "items",
            "total_minor_units",
            "currency",
        ],
        rows: Some(KEPT_ORDER),
    },
    Table {
        name: "stage_events",
        key: &["event_id"],
        columns: &["event_id", "order_id", "stage", "occurred_at", "day"],
        rows: Some(KEPT_ORDER),
    },
    Table {
        name: "fact_order_lines",
        key: &["order_id", "line"],
        columns: &[
            "order_id",
            "line",
            "sku",
            "quantity",
            "unit_price_minor_units",
            "currency",
        ],
        rows: Some(KEPT_ORDER),
    },
    Table {
        name: "fact_payments",
        key: &["event_id"],
        columns: &[
            "event_id",
            "order_id",
            "payment_id",
            "attempt",
            "outcome",
            "amount_minor_units",
            "currency",
            "reason",
            "occurred_at",
            "day",
        ],
        rows: Some(KEPT_ORDER),
    },
];

/// Deletes from a rebuild's copies (the tables as `conn`'s search path
/// names them) the rows `events` made outside [`TABLES`]' `rows`, so the
/// copies hold only rows the events decide. Nothing when every event was
/// kept (one statement).
pub async fn leave_out_unkept(conn: &mut PgConnection, events: &[&Received<'_>]) -> Result<(), sqlx::Error> {
    let any: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM public.unkept_orders) OR EXISTS (SELECT 1 FROM public.unkept_days)
                OR EXISTS (SELECT 1 FROM public.unkept_skus)",
    )
    .fetch_one(&mut *conn)
    .await?;
    if !any {
        return Ok(());
    }
    let orders: BTreeSet<Uuid> = events.iter().map(|e| e.order_id).collect();
    let days: BTreeSet<NaiveDate> = events.iter().map(|e| e.occurred_at.date_naive()).collect();
    let skus: BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e.placement.as_ref())
        .flat_map(|p| p.lines.iter().map(|l| l.sku))
        .collect();
    for table in TABLES.iter().rev() {
        let rows = table.rows.unwrap_or("true");
        let (column, kind) = match table.name {
            "dim_day" => ("day", "date"),
            "dim_sku" => ("sku", "text"),
            _ => ("order_id", "uuid"),
        };
        let sql = format!(
            "DELETE FROM {} WHERE {column} = ANY($1::{kind}[]) AND NOT ({rows})",
            table.name
        );
        let query = sqlx::query(&sql);
        let query = match kind {
            "date" => query.bind(days.iter().copied().collect::<Vec<_>>()),
            "text" => query.bind(skus.iter().copied().collect::<Vec<_>>()),
            _ => query.bind(orders.iter().copied().collect::<Vec<_>>()),
        };
        query.execute(&mut *conn).await?;
    }
    Ok(())
}
