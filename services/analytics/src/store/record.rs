//! What the consumer writes for each event it receives: the event
//! (`received_events`), its stage (`stage_events`), the order's row
//! (`fact_orders`), a placement's lines (`fact_order_lines`) and the
//! dimensions they name (`dim_day`, `dim_sku`). [`Known`] remembers the days
//! and SKUs already written, so a day or a SKU costs a statement once per
//! process, not once per event.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::domain::{Kept, Stage, Stages};

/// The `dim_day` and `dim_sku` rows this process has written (or found),
/// with each SKU's name as written. A transaction that wrote one may still
/// roll back, and a database may be restored: a row this remembers may be
/// missing, and the write that names it then fails on its foreign key. The
/// handler forgets everything then ([`Known::forget`]) and the record is
/// retried, writing the rows again.
#[derive(Debug, Default)]
pub struct Known {
    days: Mutex<HashSet<NaiveDate>>,
    skus: Mutex<HashMap<String, String>>,
}

impl Known {
    fn has_day(&self, day: NaiveDate) -> bool {
        self.days.lock().unwrap_or_else(|e| e.into_inner()).contains(&day)
    }

    fn note_day(&self, day: NaiveDate) {
        self.days.lock().unwrap_or_else(|e| e.into_inner()).insert(day);
    }

    /// Whether `sku` is known under `name` (a new name is written again:
    /// the dimension keeps the latest order's).
    fn has_sku(&self, sku: &str, name: &str) -> bool {
        self.skus
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sku)
            .is_some_and(|n| n == name)
    }

    fn note_sku(&self, sku: &str, name: &str) {
        self.skus
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sku.to_owned(), name.to_owned());
    }

    /// Forgets every row; whether it knew any (when it knew none, a
    /// foreign key violation is not its doing).
    pub fn forget(&self) -> bool {
        let mut days = self.days.lock().unwrap_or_else(|e| e.into_inner());
        let mut skus = self.skus.lock().unwrap_or_else(|e| e.into_inner());
        let knew = !days.is_empty() || !skus.is_empty();
        days.clear();
        skus.clear();
        knew
    }
}

/// Whether `e` is a foreign key violation (SQLSTATE 23503).
pub fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "23503")
}

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
/// time, or one more of it. Returns when the order reached its timed
/// stages if this event set the time of its own (a timed stage, reached at
/// `at`), `None` otherwise.
pub async fn record_stage(
    conn: &mut PgConnection,
    known: &Known,
    event_id: Uuid,
    order_id: Uuid,
    stage: Stage,
    at: DateTime<Utc>,
) -> Result<Option<Stages>, sqlx::Error> {
    let day = ensure_day(conn, known, at).await?;
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
    // The columns come from the fixed list of `Stage`, never from input. A
    // cancellation that reached the warehouse after the parcel left loses,
    // as at the order service: the order shipped, whichever of the two
    // arrived here first. Its stage row stays in `fact_stages`.
    let sql = match (stage, stage.kept()) {
        (Stage::Cancelled, Kept::FirstTime(column)) => format!(
            "INSERT INTO fact_orders (order_id, {column}) VALUES ($1, $2)
             ON CONFLICT (order_id) DO UPDATE SET {column} =
                 CASE WHEN fact_orders.shipped_at IS NULL THEN coalesce(fact_orders.{column}, $2) END
             RETURNING placed_at, paid_at, ready_at, shipped_at, {column} = $2"
        ),
        (_, Kept::FirstTime(column)) => {
            let shipped = if stage == Stage::Shipped { ", cancelled_at = NULL" } else { "" };
            format!(
                "INSERT INTO fact_orders (order_id, {column}) VALUES ($1, $2)
                 ON CONFLICT (order_id) DO UPDATE SET {column} = coalesce(fact_orders.{column}, $2){shipped}
                 RETURNING placed_at, paid_at, ready_at, shipped_at, {column} = $2"
            )
        }
        (_, Kept::Count(column)) => format!(
            "INSERT INTO fact_orders (order_id, {column}) VALUES ($1, 1)
             ON CONFLICT (order_id) DO UPDATE SET {column} = fact_orders.{column} + 1
             RETURNING placed_at, paid_at, ready_at, shipped_at, false"
        ),
    };
    let query = sqlx::query(&sql).bind(order_id);
    let query = match stage.kept() {
        Kept::FirstTime(_) => query.bind(at),
        Kept::Count(_) => query,
    };
    let row = query.fetch_one(&mut *conn).await?;
    let set_here: Option<bool> = row.get(4);
    Ok((stage.is_timed() && set_here == Some(true)).then(|| Stages {
        placed: row.get(0),
        paid: row.get(1),
        ready: row.get(2),
        shipped: row.get(3),
    }))
}

/// The UTC day of `at`, in `dim_day` from now on (written unless known).
async fn ensure_day(conn: &mut PgConnection, known: &Known, at: DateTime<Utc>) -> Result<NaiveDate, sqlx::Error> {
    let day = at.date_naive();
    if known.has_day(day) {
        return Ok(day);
    }
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
    known.note_day(day);
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
    known: &Known,
    order_id: Uuid,
    placement: &Placement<'_>,
) -> Result<(), sqlx::Error> {
    let day = ensure_day(conn, known, placement.at).await?;
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
        if !known.has_sku(l.sku, l.name) {
            sqlx::query(
                "INSERT INTO dim_sku (sku, name) VALUES ($1, $2)
                 ON CONFLICT (sku) DO UPDATE SET name = $2",
            )
            .bind(l.sku)
            .bind(l.name)
            .execute(&mut *conn)
            .await?;
            known.note_sku(l.sku, l.name);
        }
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
