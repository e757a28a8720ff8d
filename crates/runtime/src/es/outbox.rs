//! The transactional outbox, its writing side: rows are written in the
//! business transaction (by [`enqueue`], or with the events by
//! [`crate::es::store::append_publishing`]), and each commit that wrote one
//! wakes the relay ([`crate::work::note_outbox`]). The relay that publishes
//! them is [`crate::messaging::relay`].

use std::collections::BTreeMap;

use omnisaga_proto::v1::Envelope;
use prost::Message;
use sqlx::{PgConnection, PgPool};
use tracing::Instrument as _;

use crate::{es::event::TraceContext, work::note_outbox};

/// Content type header value of every business event.
pub const CONTENT_TYPE: &str = "application/x-protobuf; messageType=omnisaga.v1.Envelope";

/// Writes `envelope` to the outbox for `topic`, keyed by its order id, in
/// the caller's transaction.
pub async fn enqueue(
    conn: &mut PgConnection,
    topic: &str,
    envelope: &Envelope,
    trace: &TraceContext,
) -> Result<(), sqlx::Error> {
    enqueue_raw(
        conn,
        topic,
        &envelope.order_id,
        &envelope.encode_to_vec(),
        &headers(envelope, trace),
    )
    .await
}

/// The Kafka headers of a business event: its type, the content type and
/// the trace context of the transaction that wrote it.
pub fn headers(envelope: &Envelope, trace: &TraceContext) -> BTreeMap<String, String> {
    let mut headers = BTreeMap::new();
    headers.insert("event_type".to_owned(), envelope.event_type.clone());
    headers.insert("content-type".to_owned(), CONTENT_TYPE.to_owned());
    if let Some(tp) = &trace.traceparent {
        headers.insert("traceparent".to_owned(), tp.clone());
    }
    if let Some(ts) = &trace.tracestate {
        headers.insert("tracestate".to_owned(), ts.clone());
    }
    headers
}

/// Writes any record (a dead letter, say) to the outbox.
pub async fn enqueue_raw(
    conn: &mut PgConnection,
    topic: &str,
    key: &str,
    payload: &[u8],
    headers: &BTreeMap<String, String>,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO outbox (topic, message_key, payload, headers) VALUES ($1, $2, $3, $4)")
        .bind(topic)
        .bind(key)
        .bind(payload)
        .bind(sqlx::types::Json(headers))
        .execute(conn)
        .instrument(crate::base::db::span("INSERT outbox"))
        .await?;
    note_outbox();
    Ok(())
}

/// Rows waiting to be published (the outbox backlog).
pub async fn backlog(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
}
