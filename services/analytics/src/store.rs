//! The analytics database: every event received (`received_events`), and
//! the star schema analysts query (migrations/1001_star_schema.sql,
//! docs/analytics.md): each stage event (`stage_events`), each order
//! (`fact_orders`) and its lines (`fact_order_lines`), with the dimensions
//! they name. The API's and the dashboard's queries are in `figures`.
//! Every statement of the service is in this module.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use crate::domain::{Kept, Stage, Stages};

mod figures;

pub use figures::*;

/// An event as received.
pub struct Received<'a> {
    pub event_id: Uuid,
    pub order_id: Uuid,
    pub event_type: &'a str,
    pub occurred_at: DateTime<Utc>,
    pub topic: &'a str,
}

/// Records `event`; whether it is new (a redelivered one is not).
pub async fn record_received(conn: &mut PgConnection, event: &Received<'_>) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO received_events (event_id, order_id, event_type, occurred_at, topic)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(event.event_id)
    .bind(event.order_id)
    .bind(event.event_type)
    .bind(event.occurred_at)
    .bind(event.topic)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Records the stage event `event_id` of `order_id` (`stage_events`), its
/// day (`dim_day`) and the order's row (`fact_orders`): the stage's first
/// time, or one more of it.
pub async fn record_stage(
    conn: &mut PgConnection,
    event_id: Uuid,
    order_id: Uuid,
    stage: Stage,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let day = ensure_day(conn, at).await?;
    sqlx::query(
        "INSERT INTO stage_events (event_id, order_id, stage, occurred_at, day)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(event_id)
    .bind(order_id)
    .bind(stage.name())
    .bind(at)
    .bind(day)
    .execute(&mut *conn)
    .await?;
    // The columns come from the fixed list of `Stage`, never from input.
    let sql = match stage.kept() {
        Kept::FirstTime(column) => format!(
            "INSERT INTO fact_orders (order_id, {column}) VALUES ($1, $2)
             ON CONFLICT (order_id) DO UPDATE SET {column} = coalesce(fact_orders.{column}, $2)"
        ),
        Kept::Count(column) => format!(
            "INSERT INTO fact_orders (order_id, {column}) VALUES ($1, 1)
             ON CONFLICT (order_id) DO UPDATE SET {column} = fact_orders.{column} + 1"
        ),
    };
    let query = sqlx::query(&sql).bind(order_id);
    let query = match stage.kept() {
        Kept::FirstTime(_) => query.bind(at),
        Kept::Count(_) => query,
    };
    query.execute(&mut *conn).await?;
    if matches!(stage, Stage::Shipped | Stage::Cancelled) {
        // A cancellation that reached the warehouse after the parcel left
        // loses, as at the order service: the order shipped, whichever of
        // the two arrived here first. Its stage row stays in `fact_stages`.
        sqlx::query(
            "UPDATE fact_orders SET cancelled_at = NULL
             WHERE order_id = $1 AND shipped_at IS NOT NULL AND cancelled_at IS NOT NULL",
        )
        .bind(order_id)
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// The UTC day of `at`, in `dim_day` from now on.
async fn ensure_day(conn: &mut PgConnection, at: DateTime<Utc>) -> Result<NaiveDate, sqlx::Error> {
    let day = at.date_naive();
    sqlx::query(
        "INSERT INTO dim_day (day, year, quarter, month, iso_year, iso_week, iso_weekday, is_weekend)
         SELECT $1, extract(year FROM $1), extract(quarter FROM $1), extract(month FROM $1),
                extract(isoyear FROM $1), extract(week FROM $1), extract(isodow FROM $1),
                extract(isodow FROM $1) >= 6
         ON CONFLICT DO NOTHING",
    )
    .bind(day)
    .execute(conn)
    .await?;
    Ok(day)
}

/// What an `OrderPlaced` tells about the order besides its stage.
pub struct Placement<'a> {
    pub channel: &'static str,
    pub at: DateTime<Utc>,
    pub lines: &'a [Line<'a>],
    pub total_minor_units: i64,
    pub currency: &'a str,
}

/// One line of an order.
pub struct Line<'a> {
    pub sku: &'a str,
    pub name: &'a str,
    pub quantity: i32,
    pub unit_price_minor_units: i64,
    pub currency: &'a str,
}

/// Records the order's channel, day, size and total in its `fact_orders`
/// row, its lines in `fact_order_lines` and their SKUs in `dim_sku`.
pub async fn record_placement(
    conn: &mut PgConnection,
    order_id: Uuid,
    placement: &Placement<'_>,
) -> Result<(), sqlx::Error> {
    let day = ensure_day(conn, placement.at).await?;
    let items: i32 = placement.lines.iter().map(|l| l.quantity).sum();
    sqlx::query(
        "INSERT INTO fact_orders (order_id, channel, placed_day, items, total_minor_units, currency)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (order_id) DO UPDATE SET channel = $2, placed_day = $3, items = $4,
             total_minor_units = $5, currency = $6",
    )
    .bind(order_id)
    .bind(placement.channel)
    .bind(day)
    .bind(items)
    .bind(placement.total_minor_units)
    .bind(placement.currency)
    .execute(&mut *conn)
    .await?;
    for (line, l) in placement.lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO dim_sku (sku, name) VALUES ($1, $2)
             ON CONFLICT (sku) DO UPDATE SET name = $2",
        )
        .bind(l.sku)
        .bind(l.name)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO fact_order_lines (order_id, line, sku, quantity, unit_price_minor_units, currency)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(order_id)
        .bind(line as i32 + 1)
        .bind(l.sku)
        .bind(l.quantity)
        .bind(l.unit_price_minor_units)
        .bind(l.currency)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// When `order_id` reached its timed stages, if the time it reached `stage`
/// is `at` (the event that says so set it); `None` otherwise.
pub async fn stages_if_reached_at(
    conn: &mut PgConnection,
    order_id: Uuid,
    stage: Stage,
    at: DateTime<Utc>,
) -> Result<Option<Stages>, sqlx::Error> {
    let Kept::FirstTime(column) = stage.kept() else {
        return Ok(None);
    };
    // `column` comes from the fixed list of `Stage`, never from input.
    let sql = format!(
        "SELECT placed_at, paid_at, ready_at, shipped_at FROM fact_orders
         WHERE order_id = $1 AND {column} = $2"
    );
    let row = sqlx::query(&sql)
        .bind(order_id)
        .bind(at)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| Stages {
        placed: r.get(0),
        paid: r.get(1),
        ready: r.get(2),
        shipped: r.get(3),
    }))
}

/// A read-only transaction that sees one snapshot, so that every figure of
/// one answer comes from the same moment.
pub async fn snapshot(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The tables and views analysts read (docs/analytics.md); the operational
/// tables (outbox, inbox, dead letters with whole events) are not among them.
pub const ANALYST_TABLES: [&str; 10] = [
    "fact_orders",
    "stage_events",
    "fact_stages",
    "fact_order_lines",
    "received_events",
    "dim_channel",
    "dim_stage",
    "dim_payment_outcome",
    "dim_day",
    "dim_sku",
];

/// Lets `role` read [`ANALYST_TABLES`] and nothing else, when the role
/// exists (the deployment creates it); whether it did. Granting again is
/// harmless, so every start does it, for tables a migration added too.
pub async fn grant_analyst_reads(pool: &PgPool, role: &str) -> Result<bool, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(role)
        .fetch_one(pool)
        .await?;
    if exists {
        // `role` is checked to be a plain identifier by the configuration.
        let sql = format!("GRANT SELECT ON {} TO \"{role}\"", ANALYST_TABLES.join(", "));
        sqlx::query(&sql).execute(pool).await?;
    }
    Ok(exists)
}
