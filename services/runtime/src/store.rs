//! The event store: append-only streams with optimistic concurrency on
//! `(stream_id, version)`. A stream is folded into state by its service.

use omnisaga_proto::v1::Envelope;
use prost::Message;
use sqlx::{PgConnection, Row};
use tracing::Instrument as _;

use crate::event::{event_id, occurred_at};

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

/// Loads every event of `stream_id` in version order.
pub async fn load(conn: &mut PgConnection, stream_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query("SELECT version, envelope FROM events WHERE stream_id = $1 ORDER BY version")
        .bind(stream_id)
        .fetch_all(conn)
        .instrument(crate::db::span("SELECT events"))
        .await?;
    rows.into_iter()
        .map(|row| {
            let version: i64 = row.get(0);
            let bytes: Vec<u8> = row.get(1);
            let envelope = Envelope::decode(bytes.as_slice()).map_err(|_| StoreError::Corrupt(version))?;
            Ok(StoredEvent { version, envelope })
        })
        .collect()
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
    let mut version = expected_version;
    for env in events {
        version += 1;
        let id = event_id(env).unwrap_or_else(uuid::Uuid::now_v7);
        let result = sqlx::query(
            "INSERT INTO events (stream_id, version, event_id, event_type, order_id, occurred_at, envelope)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(stream_id)
        .bind(version)
        .bind(id)
        .bind(&env.event_type)
        .bind(&env.order_id)
        .bind(occurred_at(env))
        .bind(env.encode_to_vec())
        .execute(&mut *conn)
        .instrument(crate::db::span("INSERT events"))
        .await;
        match result {
            Ok(_) => {}
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                return Err(StoreError::Conflict {
                    stream_id: stream_id.to_owned(),
                    expected: expected_version,
                })
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(version)
}

/// Whether an event with this id is already in the store (any stream).
pub async fn contains(conn: &mut PgConnection, event_id: uuid::Uuid) -> Result<bool, StoreError> {
    let found = sqlx::query("SELECT 1 FROM events WHERE event_id = $1")
        .bind(event_id)
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}
