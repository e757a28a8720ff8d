//! `POST /v1/admin/dead-letters/{id}/skip`: a dead letter passed over as
//! if it had been applied. Where a discard sets the record aside and
//! nothing more (a copy of it that comes again is handled as new: applied
//! if it now can be, or parked again), a skip settles the event the record
//! carries: its event id goes into the consumer's inbox, as an applied
//! event's does, so every copy of it that comes again (the relay sending it
//! once more, a consumer group reading the topic again) is dropped as a
//! duplicate for as long as the inbox remembers (`INBOX_RETENTION`). Only
//! a record that decodes has an event id to settle: one that does not is
//! discarded instead.

use axum::{
    extract::{Path, State},
    Json,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{AdminState, ConsumerReplay, DeadLetter, COLUMNS};
use crate::{
    edge::http::{ApiError, ApiJson},
    es::event::event_id,
    messaging::consumer::decode,
};

/// Skip a dead letter.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SkipRequest {
    /// Why its event is passed over (kept with it; 1 to 500 characters).
    reason: String,
}

/// The dead letter skipped, and the replay of its key's later records.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Skipped {
    pub skipped: DeadLetter,
    /// The event id marked applied in the consumer's inbox: a copy of the
    /// event that comes again is dropped as a duplicate.
    pub event_id: String,
    pub reason: String,
    /// Its consumer's replay of the key's dead letters left, which unparks
    /// the key once none is left: the order's later records go on.
    pub replay: ConsumerReplay,
}

/// Skip a dead letter
///
/// The record's event is passed over for good, as if it had been applied:
/// its event id goes into the consumer's inbox (a copy of it that comes
/// again is dropped as a duplicate), the record is kept in
/// `skipped_dead_letters` with the reason given, and its consumer replays
/// the key's later dead letters, oldest first, and unparks the key once
/// none is left. A discard, by contrast, marks nothing: a copy that comes
/// again is handled as new. A record that does not decode has no event id
/// to mark (409: discard it). The audit log records who did it.
#[utoipa::path(post, path = "/v1/admin/dead-letters/{id}/skip", tag = "operations",
    params(("id" = i64, Path, description = "the dead letter's id")),
    request_body = SkipRequest,
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "skipped, its event marked applied, and the key's later records replayed", body = Skipped),
        (status = 404, description = "not_found: no such dead letter", body = crate::edge::http::ErrorBody),
        (status = 409, description = "conflict: the record does not decode, so it has no event id to mark applied (discard it)", body = crate::edge::http::ErrorBody),
        (status = 422, description = "validation_failed: no reason, a reason over 500 characters, or one holding a NUL", body = crate::edge::http::ErrorBody),
    ))]
pub(crate) async fn skip(
    State(s): State<AdminState>,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<SkipRequest>,
) -> Result<Json<Skipped>, ApiError> {
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 || reason.contains('\0') {
        return Err(ApiError::validation(
            "reason: say why the record is skipped, in 1 to 500 characters (no NUL)",
        ));
    }
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS}, payload FROM dead_letters WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&s.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("no such dead letter"))?;
    let letter = DeadLetter::of(&row);
    let payload: Vec<u8> = row.get("payload");
    let event = decode(&payload)
        .ok()
        .and_then(|env| event_id(&env))
        .ok_or_else(|| {
            ApiError::conflict(
                "conflict",
                format!(
                    "dead letter {id} does not decode, so it has no event id to mark applied: discard it instead"
                ),
            )
        })?;
    let replayer = s.replayer(&letter.consumer)?;
    // The key's parked row first, as a replay and a discard take it.
    let mut tx = s.pool.begin().await?;
    sqlx::query("SELECT 1 FROM parked WHERE consumer = $1 AND message_key = $2 FOR UPDATE")
        .bind(&letter.consumer)
        .bind(&letter.key)
        .fetch_optional(&mut *tx)
        .await?;
    let moved = sqlx::query(
        "WITH gone AS (DELETE FROM dead_letters WHERE id = $1 RETURNING *)
         INSERT INTO skipped_dead_letters
         SELECT gone.*, $2, $3 FROM gone",
    )
    .bind(id)
    .bind(event)
    .bind(reason)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved == 0 {
        return Err(ApiError::not_found(
            "no such dead letter (replayed, discarded or skipped meanwhile)",
        ));
    }
    sqlx::query(
        "INSERT INTO inbox (consumer, event_id, topic, partition, \"offset\")
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(&letter.consumer)
    .bind(event)
    .bind(&letter.topic)
    .bind(letter.partition)
    .bind(letter.offset)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::warn!(dead_letter = id, key = %letter.key, consumer = %letter.consumer, event_id = %event, reason, "dead letter skipped");
    let report = replayer.replay(&letter.key).await?;
    Ok(Json(Skipped {
        replay: ConsumerReplay {
            consumer: letter.consumer.clone(),
            report,
        },
        skipped: letter,
        event_id: event.to_string(),
        reason: reason.to_owned(),
    }))
}
