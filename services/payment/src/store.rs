//! The payment database: one stream per order (`payment-<order id>`) and the
//! payment view support reads.

use omnisaga_proto::v1::{envelope::Payload, Envelope};
use omnisaga_runtime::{
    event::{self, EventMeta},
    store::{self, StoreError},
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{self, Payment};

pub fn stream(order_id: Uuid) -> String {
    format!("payment-{order_id}")
}

/// Loads an order's payment: its state and stream version.
pub async fn load(conn: &mut PgConnection, order_id: Uuid) -> Result<(Payment, i64), StoreError> {
    let history = store::load(conn, &stream(order_id)).await?;
    let version = history.last().map_or(0, |e| e.version);
    let state = history
        .iter()
        .filter_map(|e| e.envelope.payload.as_ref())
        .fold(Payment::default(), domain::evolve);
    Ok((state, version))
}

/// Appends what `decide` decided to the order's stream after `version`. A
/// fact from another service is stored as the envelope it came in (`cause`);
/// payment's own events get new envelopes and go to the outbox for `topic`
/// in the same transaction. Returns payment's own envelopes, in order.
pub async fn record(
    conn: &mut PgConnection,
    topic: &str,
    order_id: Uuid,
    version: i64,
    events: Vec<Payload>,
    cause: &Envelope,
    meta: &EventMeta,
) -> Result<Vec<Envelope>, StoreError> {
    let now = chrono::Utc::now();
    let mut all = Vec::with_capacity(events.len());
    for payload in events {
        all.push(if domain::publishes(&payload) {
            event::envelope("payment", &cause.order_id, payload, meta, now)
        } else {
            cause.clone()
        });
    }
    let publishes = |e: &Envelope| e.payload.as_ref().is_some_and(domain::publishes);
    store::append_publishing(
        conn,
        &stream(order_id),
        version,
        &all,
        publishes,
        topic,
        &meta.trace,
    )
    .await?;
    Ok(all.into_iter().filter(publishes).collect())
}

/// Writes the order's payment as support sees it.
pub async fn update_view(conn: &mut PgConnection, order_id: Uuid, p: &Payment) -> Result<(), sqlx::Error> {
    let status = match (p.cancelled, p.voided, p.authorized.is_some()) {
        (_, true, _) => "VOIDED",
        (_, _, true) => "AUTHORIZED",
        (true, _, _) => "CANCELLED",
        _ => "FAILED",
    };
    let total = p.amount.clone().unwrap_or_default();
    sqlx::query(
        "INSERT INTO payment_view (order_id, status, attempts, amount_minor, currency) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (order_id) DO UPDATE SET status = $2, attempts = $3, updated_at = now()",
    )
    .bind(order_id)
    .bind(status)
    .bind(p.attempts as i32)
    .bind(total.minor_units)
    .bind(&total.currency)
    .execute(conn)
    .await?;
    Ok(())
}
