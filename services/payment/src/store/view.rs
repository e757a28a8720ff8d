//! The payment view support reads, `payment_view`: one row per order's
//! payment stream, what the stream's fold says of the payment. The live
//! path writes it with each event it records ([`update_view`]); a rebuild
//! folds it from the streams alone (`crate::projection`), with the same
//! statement ([`upsert`]), so the two cannot write a row differently.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use omnisaga_runtime::{
    aggregate::{Aggregate, Executed},
    event::occurred_at,
    store::{self as es, StoreError, StoredEvent},
};
use sqlx::{PgConnection, PgPool, Row as _};
use uuid::Uuid;

use crate::domain::{Payment, PaymentAggregate};

/// A payment as support sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewStatus {
    /// An attempt was approved and stands.
    Authorized,
    /// No attempt was approved (yet): declined or the provider unreachable.
    Failed,
    /// The order was cancelled before any attempt was approved.
    Cancelled,
    /// The authorisation was released because nothing of the order ships.
    Voided,
}

impl ViewStatus {
    /// What the view says of `payment`.
    pub fn of(payment: &Payment) -> Self {
        match (payment.cancelled, payment.voided, payment.authorized.is_some()) {
            (_, true, _) => ViewStatus::Voided,
            (_, _, true) => ViewStatus::Authorized,
            (true, _, _) => ViewStatus::Cancelled,
            _ => ViewStatus::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ViewStatus::Authorized => "AUTHORIZED",
            ViewStatus::Failed => "FAILED",
            ViewStatus::Cancelled => "CANCELLED",
            ViewStatus::Voided => "VOIDED",
        }
    }
}

/// A row of the view, every column of it decided by the order's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub order_id: Uuid,
    pub status: ViewStatus,
    pub attempts: i32,
    /// The amount of the attempts made (0 and empty before the first).
    pub amount_minor: i64,
    pub currency: String,
    /// When the stream's last event occurred (its envelope's time; a fact
    /// of another service is kept as it came, with its producer's time).
    pub updated_at: DateTime<Utc>,
}

impl Row {
    /// The row of `order_id`'s payment in `state`, its last event at `at`.
    pub fn of(order_id: Uuid, state: &Payment, at: DateTime<Utc>) -> Self {
        let amount = state.amount.clone().unwrap_or_default();
        Row {
            order_id,
            status: ViewStatus::of(state),
            attempts: state.attempts as i32,
            amount_minor: amount.minor_units,
            currency: amount.currency,
            updated_at: at,
        }
    }
}

/// Writes the order's payment as `done` left it, in the transaction that
/// recorded `done`'s events.
pub async fn update_view(
    conn: &mut PgConnection,
    order_id: Uuid,
    done: &Executed<PaymentAggregate>,
) -> Result<(), sqlx::Error> {
    let at = done.appended.last().map(occurred_at).unwrap_or_default();
    upsert(conn, &[Row::of(order_id, &done.state, at)]).await
}

/// Writes `rows` (one per order), in one statement.
pub async fn upsert(conn: &mut PgConnection, rows: &[Row]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.order_id).collect();
    let statuses: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
    let attempts: Vec<i32> = rows.iter().map(|r| r.attempts).collect();
    let amounts: Vec<i64> = rows.iter().map(|r| r.amount_minor).collect();
    let currencies: Vec<&str> = rows.iter().map(|r| r.currency.as_str()).collect();
    let times: Vec<DateTime<Utc>> = rows.iter().map(|r| r.updated_at).collect();
    sqlx::query(
        "INSERT INTO payment_view (order_id, status, attempts, amount_minor, currency, updated_at)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bigint[], $5::text[], $6::timestamptz[])
         ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
             amount_minor = excluded.amount_minor, currency = excluded.currency, updated_at = excluded.updated_at",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(&attempts)
    .bind(&amounts)
    .bind(&currencies)
    .bind(&times)
    .execute(conn)
    .await?;
    Ok(())
}

/// The payment streams of `order_ids`, each whole and in version order;
/// an order without one is left out.
pub async fn streams(
    conn: &mut PgConnection,
    order_ids: &[Uuid],
) -> Result<Vec<(Uuid, Vec<StoredEvent>)>, StoreError> {
    let by_name: HashMap<String, Uuid> = order_ids
        .iter()
        .map(|id| (PaymentAggregate::stream(&id.to_string()), *id))
        .collect();
    let names: Vec<&String> = by_name.keys().collect();
    let rows = sqlx::query(
        "SELECT stream_id, version, envelope FROM events WHERE stream_id = ANY($1) ORDER BY stream_id, version",
    )
    .bind(&names)
    .fetch_all(conn)
    .await?;
    let mut out: Vec<(Uuid, Vec<StoredEvent>)> = Vec::new();
    for row in rows {
        let stream: &str = row.get(0);
        let event = es::decode(row.get(1), row.get(2))?;
        let Some(&order_id) = by_name.get(stream) else {
            continue;
        };
        match out.last_mut() {
            Some((id, events)) if *id == order_id => events.push(event),
            _ => out.push((order_id, vec![event])),
        }
    }
    Ok(out)
}

/// An order's payment as support sees it.
pub struct ViewRow {
    pub status: String,
    pub attempts: i32,
    pub amount_minor: i64,
    pub currency: String,
}

/// The payment view of `order_id`; `None` until the provider answered.
pub async fn view(pool: &PgPool, order_id: Uuid) -> Result<Option<ViewRow>, sqlx::Error> {
    let row =
        sqlx::query("SELECT status, attempts, amount_minor, currency FROM payment_view WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|r| ViewRow {
        status: r.get(0),
        attempts: r.get(1),
        amount_minor: r.get(2),
        currency: r.get(3),
    }))
}
