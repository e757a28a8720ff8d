//! The event store: append-only streams with optimistic concurrency on
//! `(stream_id, version)`. A stream is folded into state by its service.

use omnisaga_proto::v1::Envelope;
use prost::Message;
use sqlx::{PgConnection, Row};
use tracing::Instrument as _;

use crate::es::event::{event_id, occurred_at, TraceContext};

/// One recorded event of a stream.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub version: i64,
    pub envelope: Envelope,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to the stream since it was loaded: reload and retry.
    #[error("stream {stream_id} was changed concurrently (expected version {expected})")]
    Conflict { stream_id: String, expected: i64 },
    #[error("stored event {0} cannot be decoded")]
    Corrupt(i64),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

tokio::task_local! {
    /// Streams read ahead by the statement that began the transaction (a
    /// consumer's inbox statement), each taken by the first [`load`] of it.
    static PRELOADED: std::cell::RefCell<Vec<(String, Vec<StoredEvent>)>>;
}

/// Runs `f` with room for streams read ahead ([`preload`]): a [`load`] in
/// `f` of a stream read ahead takes it instead of asking the database.
pub async fn preloading<F: std::future::Future>(f: F) -> F::Output {
    PRELOADED.scope(std::cell::RefCell::new(Vec::new()), f).await
}

/// Hands `streams`, read in the current transaction, to the next [`load`]
/// of each inside [`preloading`] (outside it, they are dropped). A stream
/// is served once: a second load, or one after an [`append_publishing`] to
/// it, reads the database.
pub fn preload(streams: Vec<(String, Vec<StoredEvent>)>) {
    let _ = PRELOADED.try_with(|p| *p.borrow_mut() = streams);
}

fn take_preloaded(stream_id: &str) -> Option<Vec<StoredEvent>> {
    PRELOADED
        .try_with(|p| {
            let mut p = p.borrow_mut();
            let i = p.iter().position(|(s, _)| s == stream_id)?;
            Some(p.swap_remove(i).1)
        })
        .ok()
        .flatten()
}

/// Loads every event of `stream_id` in version order (as read ahead in this
/// transaction, when it was: [`preload`]).
pub async fn load(conn: &mut PgConnection, stream_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
    if let Some(history) = take_preloaded(stream_id) {
        return Ok(history);
    }
    let rows = sqlx::query("SELECT version, envelope FROM events WHERE stream_id = $1 ORDER BY version")
        .bind(stream_id)
        .fetch_all(conn)
        .instrument(crate::base::db::span("SELECT events"))
        .await?;
    rows.into_iter()
        .map(|row| decode(row.get(0), row.get(1)))
        .collect()
}

/// One stored event as read from `events` (its `version` and `envelope`
/// columns), by [`load`] or by a service's query that reads a stream along
/// with its work. Older versions of an event are read as their newest.
pub fn decode(version: i64, bytes: &[u8]) -> Result<StoredEvent, StoreError> {
    let envelope = Envelope::decode(bytes).map_err(|_| StoreError::Corrupt(version))?;
    let envelope = crate::es::upcast::envelope(envelope);
    Ok(StoredEvent { version, envelope })
}

/// Appends `events` after `expected_version` (0 for a new stream). Fails with
/// [`StoreError::Conflict`] when the stream moved on; the caller's transaction
/// must then be rolled back.
pub async fn append(
    conn: &mut PgConnection,
    stream_id: &str,
    expected_version: i64,
    events: &[Envelope],
) -> Result<i64, StoreError> {
    append_publishing(
        conn,
        stream_id,
        expected_version,
        events,
        |_| None,
        "",
        &TraceContext::default(),
    )
    .await
}

/// Appends `events` after `expected_version` (0 for a new stream) and writes
/// what `publish` makes of each (`None`: nothing; else the envelope as it
/// goes on the topic, which may say less than the stored one) to the outbox
/// for `topic`, with the headers of
/// `trace`, in one statement: a saga step's whole write is one round trip,
/// however many events it decided. Fails with [`StoreError::Conflict`] when
/// the stream moved on (nothing is written then); the caller's transaction
/// must then be rolled back.
pub async fn append_publishing(
    conn: &mut PgConnection,
    stream_id: &str,
    expected_version: i64,
    events: &[Envelope],
    publish: impl Fn(&Envelope) -> Option<Envelope>,
    topic: &str,
    trace: &TraceContext,
) -> Result<i64, StoreError> {
    if events.is_empty() {
        return Ok(expected_version);
    }
    // What was read ahead of this stream is older than this write.
    drop(take_preloaded(stream_id));
    let mut ids = Vec::with_capacity(events.len());
    let mut types = Vec::with_capacity(events.len());
    let mut orders = Vec::with_capacity(events.len());
    let mut times = Vec::with_capacity(events.len());
    let mut bodies = Vec::with_capacity(events.len());
    let (mut keys, mut payloads, mut headers) = (Vec::new(), Vec::new(), Vec::new());
    for env in events {
        let body = env.encode_to_vec();
        if let Some(public) = publish(env) {
            keys.push(env.order_id.as_str());
            payloads.push(public.encode_to_vec());
            let h = crate::es::outbox::headers(&public, trace);
            headers.push(serde_json::to_string(&h).expect("string headers serialize"));
        }
        ids.push(event_id(env).unwrap_or_else(uuid::Uuid::now_v7));
        types.push(env.event_type.as_str());
        orders.push(env.order_id.as_str());
        times.push(occurred_at(env));
        bodies.push(body);
    }
    // Data-modifying statements in a WITH always run to completion, and the
    // whole statement fails, writing nothing, if one of its rows does.
    let result = sqlx::query(
        "WITH appended AS (
             INSERT INTO events (stream_id, version, event_id, event_type, order_id, occurred_at, envelope)
             SELECT $1, $2 + e.n, e.id, e.event_type, e.order_id, e.occurred_at, e.envelope
             FROM unnest($3::uuid[], $4::text[], $5::text[], $6::timestamptz[], $7::bytea[])
                  WITH ORDINALITY AS e(id, event_type, order_id, occurred_at, envelope, n)
             RETURNING 1
         )
         INSERT INTO outbox (topic, message_key, payload, headers)
         SELECT $8, o.message_key, o.payload, o.headers::jsonb
         FROM unnest($9::text[], $10::bytea[], $11::text[]) WITH ORDINALITY AS o(message_key, payload, headers, n)
         ORDER BY o.n",
    )
    .bind(stream_id)
    .bind(expected_version)
    .bind(&ids)
    .bind(&types)
    .bind(&orders)
    .bind(&times)
    .bind(&bodies)
    .bind(topic)
    .bind(&keys)
    .bind(&payloads)
    .bind(&headers)
    .execute(&mut *conn)
    .instrument(crate::base::db::span(if keys.is_empty() { "INSERT events" } else { "INSERT events, outbox" }))
    .await;
    match result {
        Ok(_) => {
            if !keys.is_empty() {
                crate::work::note_outbox();
            }
            Ok(expected_version + events.len() as i64)
        }
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Err(StoreError::Conflict {
            stream_id: stream_id.to_owned(),
            expected: expected_version,
        }),
        Err(e) => Err(e.into()),
    }
}

/// Whether an event with this id is already in the store (any stream).
pub async fn contains(conn: &mut PgConnection, event_id: uuid::Uuid) -> Result<bool, StoreError> {
    let found = sqlx::query("SELECT 1 FROM events WHERE event_id = $1")
        .bind(event_id)
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}
