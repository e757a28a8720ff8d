//! The star schema as a projection of analytics' own event log
//! (`received_events`, docs/rebuild.md): what `omnisaga rebuild analytics`
//! makes again from the envelopes kept there, with the same code the
//! consumer records events with ([`store::project`]).
//!
//! Events received before the log kept envelopes (migration 1003) cannot be
//! folded again: the rows they made (their orders, stage events, payments,
//! days, and the SKUs such orders name) are outside what a rebuild compares
//! or touches ([`Table::rows`]).

use anyhow::Context as _;
use async_trait::async_trait;
use omnisaga_runtime::projection::{Projection, Recorded, Source, Table};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    handlers,
    store::{self, Known, Received},
};

/// The star schema's facts and the dimensions that grow with them
/// (`dim_channel`, `dim_stage` and `dim_payment_outcome` are fixed rows of
/// the migrations, no projection's).
#[derive(Debug, Default)]
pub struct StarSchema;

/// `received_events`, the log.
pub const SOURCE: Source = Source {
    table: "received_events",
    position: "log_position",
    envelope: "envelope",
};

/// Every column but `fact_orders.payment_outcome` (generated from the others).
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
        rows: Some(
            "day NOT IN (SELECT (occurred_at AT TIME ZONE 'UTC')::date FROM public.received_events
                         WHERE envelope IS NULL)",
        ),
    },
    Table {
        name: "dim_sku",
        key: &["sku"],
        columns: &["sku", "name"],
        rows: Some(
            "sku NOT IN (SELECT sku FROM public.fact_order_lines WHERE order_id IN
                         (SELECT order_id FROM public.received_events WHERE envelope IS NULL))",
        ),
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
        rows: Some(UNKEPT_ORDERS_NOT_IN),
    },
    Table {
        name: "stage_events",
        key: &["event_id"],
        columns: &["event_id", "order_id", "stage", "occurred_at", "day"],
        rows: Some(UNKEPT_EVENTS_NOT_IN),
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
        rows: Some(UNKEPT_ORDERS_NOT_IN),
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
        rows: Some(UNKEPT_EVENTS_NOT_IN),
    },
];

/// A row of an order none of whose events lacks its envelope (the rows a
/// condition names are the live table's, or the copy's, so the log is
/// named with its schema).
const UNKEPT_ORDERS_NOT_IN: &str =
    "order_id NOT IN (SELECT order_id FROM public.received_events WHERE envelope IS NULL)";
/// A row of an event whose envelope was kept (or of none received).
const UNKEPT_EVENTS_NOT_IN: &str =
    "event_id NOT IN (SELECT event_id FROM public.received_events WHERE envelope IS NULL)";

#[async_trait]
impl Projection for StarSchema {
    fn name(&self) -> &'static str {
        "star_schema"
    }

    fn source(&self) -> Source {
        SOURCE
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[Recorded]) -> anyhow::Result<()> {
        let received = received_all(events)?;
        let received: Vec<&Received> = received.iter().collect();
        // A rebuild's own: the copies start empty, whatever this process wrote.
        let known = Known::default();
        store::project(conn, &known, &received).await?;
        Ok(())
    }
}

/// `events` as the consumer read them (their topic is not needed: it is
/// only in `received_events`, the log itself).
fn received_all(events: &[Recorded]) -> anyhow::Result<Vec<Received<'_>>> {
    let mut received = Vec::with_capacity(events.len());
    for event in events {
        let env = &event.envelope;
        let order_id = Uuid::parse_str(&env.order_id)
            .with_context(|| format!("event at {} names order {:?}", event.position, env.order_id))?;
        received.extend(handlers::received(env, order_id, "", false));
    }
    Ok(received)
}
