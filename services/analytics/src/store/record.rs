//! What the consumer writes for the events it receives, a batch at a time
//! (one event is a batch of one), one statement per table whatever the
//! batch's size: the events (`received_events`), the dimensions they name
//! (`dim_day`, `dim_sku`), a placement's lines (`fact_order_lines`), the
//! stages (`stage_events`) and the orders' rows (`fact_orders`, see
//! `fact_orders`). [`Known`] remembers the days and SKUs already written, so
//! a day or a SKU costs a statement once per process, not once per event.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Mutex,
};

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{fact_orders, payments, PaymentFact};
use crate::domain::Stage;

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

/// An event as received, with what analytics makes of it.
#[derive(Debug, PartialEq)]
pub struct Received<'a> {
    pub event_id: Uuid,
    pub order_id: Uuid,
    pub event_type: &'a str,
    /// To the microsecond, as the database keeps it.
    pub occurred_at: DateTime<Utc>,
    pub topic: &'a str,
    /// Its envelope, encoded as received: what a rebuild folds it from
    /// again (`received_events.envelope`).
    pub envelope: Vec<u8>,
    /// The stage it marks, if any.
    pub stage: Option<Stage>,
    /// What it tells about the order besides its stage, for a placement.
    pub placement: Option<Placement<'a>>,
    /// What it tells about the payment, for a payment answer or a void.
    pub payment: Option<PaymentFact<'a>>,
}

/// What an `OrderPlaced` tells about the order besides its stage.
#[derive(Debug, PartialEq)]
pub struct Placement<'a> {
    pub channel: &'static str,
    /// The customer who placed it; empty for none.
    pub customer_id: &'a str,
    pub lines: Vec<Line<'a>>,
    pub total_minor_units: i64,
    pub currency: &'a str,
}

/// One line of an order.
#[derive(Debug, PartialEq)]
pub struct Line<'a> {
    pub sku: &'a str,
    pub name: &'a str,
    pub quantity: i32,
    pub unit_price_minor_units: i64,
    pub currency: &'a str,
}

/// Records `events`, in the order received: each new one (a redelivered
/// one is not) and what [`project`] makes of it. Returns the stage
/// durations they completed (`domain::completed`).
pub async fn record_all(
    conn: &mut PgConnection,
    known: &Known,
    events: &[Received<'_>],
) -> Result<Vec<(&'static str, f64)>, sqlx::Error> {
    let mut fresh = record_received(conn, events).await?;
    // An event twice among them: only its first is new.
    let new: Vec<&Received> = events.iter().filter(|e| fresh.remove(&e.event_id)).collect();
    project(conn, known, &new).await
}

/// Folds `events` (each once, in the order received) into the star schema:
/// each stage event, the order's row, a placement's channel, day, size,
/// total, lines and SKUs, a payment's row. What the consumer does with the
/// events it records, and what a rebuild does with the log
/// (`crate::projection`). Returns the stage durations they completed.
pub async fn project(
    conn: &mut PgConnection,
    known: &Known,
    events: &[&Received<'_>],
) -> Result<Vec<(&'static str, f64)>, sqlx::Error> {
    let staged: Vec<&Received> = events.iter().copied().filter(|e| e.stage.is_some()).collect();
    if staged.is_empty() {
        return Ok(Vec::new());
    }
    ensure_days(conn, known, staged.iter().map(|e| e.occurred_at.date_naive())).await?;
    let placements: Vec<(Uuid, &Placement)> = staged
        .iter()
        .filter_map(|e| e.placement.as_ref().map(|p| (e.order_id, p)))
        .collect();
    if !placements.is_empty() {
        ensure_skus(conn, known, &placements).await?;
        record_lines(conn, &placements).await?;
    }
    record_stages(conn, &staged).await?;
    payments::record(conn, &staged).await?;
    fact_orders::record(conn, &staged).await
}

/// Records `events`; the ids of the new ones.
async fn record_received(
    conn: &mut PgConnection,
    events: &[Received<'_>],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let orders: Vec<Uuid> = events.iter().map(|e| e.order_id).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type).collect();
    let times: Vec<DateTime<Utc>> = events.iter().map(|e| e.occurred_at).collect();
    let topics: Vec<&str> = events.iter().map(|e| e.topic).collect();
    let envelopes: Vec<&[u8]> = events.iter().map(|e| e.envelope.as_slice()).collect();
    let fresh: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO received_events (event_id, order_id, event_type, occurred_at, topic, envelope)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::text[], $6::bytea[])
         ON CONFLICT DO NOTHING RETURNING event_id",
    )
    .bind(&ids)
    .bind(&orders)
    .bind(&types)
    .bind(&times)
    .bind(&topics)
    .bind(&envelopes)
    .fetch_all(conn)
    .await?;
    Ok(fresh.into_iter().collect())
}

/// Puts `days` in `dim_day`, those not known yet.
async fn ensure_days(
    conn: &mut PgConnection,
    known: &Known,
    days: impl Iterator<Item = NaiveDate>,
) -> Result<(), sqlx::Error> {
    let mut new: Vec<NaiveDate> = days.filter(|d| !known.has_day(*d)).collect();
    new.sort_unstable();
    new.dedup();
    if new.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO dim_day (day, year, quarter, month, iso_year, iso_week, iso_weekday, is_weekend)
         SELECT d, extract(year FROM d), extract(quarter FROM d), extract(month FROM d),
                extract(isoyear FROM d), extract(week FROM d), extract(isodow FROM d),
                extract(isodow FROM d) >= 6
         FROM unnest($1::date[]) AS t (d)
         ON CONFLICT DO NOTHING",
    )
    .bind(&new)
    .execute(conn)
    .await?;
    for day in new {
        known.note_day(day);
    }
    Ok(())
}

/// Puts the SKUs of `placements` in `dim_sku` under the name the latest
/// gave each, unless known under that name.
async fn ensure_skus(
    conn: &mut PgConnection,
    known: &Known,
    placements: &[(Uuid, &Placement<'_>)],
) -> Result<(), sqlx::Error> {
    let latest: BTreeMap<&str, &str> = placements
        .iter()
        .flat_map(|(_, p)| p.lines.iter().map(|l| (l.sku, l.name)))
        .collect();
    let (skus, names): (Vec<&str>, Vec<&str>) = latest
        .into_iter()
        .filter(|(sku, name)| !known.has_sku(sku, name))
        .unzip();
    if skus.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO dim_sku (sku, name) SELECT * FROM unnest($1::text[], $2::text[])
         ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name",
    )
    .bind(&skus)
    .bind(&names)
    .execute(conn)
    .await?;
    for (sku, name) in skus.into_iter().zip(names) {
        known.note_sku(sku, name);
    }
    Ok(())
}

/// Records the lines of `placements` (an order's first placement keeps them).
async fn record_lines(
    conn: &mut PgConnection,
    placements: &[(Uuid, &Placement<'_>)],
) -> Result<(), sqlx::Error> {
    let lines: Vec<(Uuid, i32, &Line)> = placements
        .iter()
        .flat_map(|(order_id, p)| p.lines.iter().zip(1..).map(|(l, n)| (*order_id, n, l)))
        .collect();
    if lines.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO fact_order_lines (order_id, line, sku, quantity, unit_price_minor_units, currency)
         SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::int[], $5::bigint[], $6::text[])
         ON CONFLICT DO NOTHING",
    )
    .bind(lines.iter().map(|l| l.0).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.1).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.2.sku).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.2.quantity).collect::<Vec<_>>())
    .bind(
        lines
            .iter()
            .map(|l| l.2.unit_price_minor_units)
            .collect::<Vec<_>>(),
    )
    .bind(lines.iter().map(|l| l.2.currency).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the stage events among `staged` (`stage_events`).
async fn record_stages(conn: &mut PgConnection, staged: &[&Received<'_>]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO stage_events (event_id, order_id, stage, occurred_at, day)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::date[])
         ON CONFLICT DO NOTHING",
    )
    .bind(staged.iter().map(|e| e.event_id).collect::<Vec<_>>())
    .bind(staged.iter().map(|e| e.order_id).collect::<Vec<_>>())
    .bind(
        staged
            .iter()
            .map(|e| e.stage.map_or("", Stage::name))
            .collect::<Vec<_>>(),
    )
    .bind(staged.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
    .bind(
        staged
            .iter()
            .map(|e| e.occurred_at.date_naive())
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await?;
    Ok(())
}
