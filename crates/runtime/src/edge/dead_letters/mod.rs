//! `/v1/admin/dead-letters`: the dead letters of the service's consumers
//! ([`crate::messaging::consumer::dead_letter`]) listed, shown, replayed,
//! discarded, skipped ([`skip`]) and redriven in bulk ([`redrive`]) by an
//! operator (the `omnisaga` CLI calls it).

pub(crate) mod redrive;
pub(crate) mod skip;

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    extract::{Path, Query, State},
    routing::{get, post},
    Json, Router,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};

use crate::{
    edge::http::{ApiError, ApiJson},
    messaging::consumer::{
        dead_letter::{Replay, ReplayReport},
        decode,
    },
};

#[derive(Clone)]
pub(crate) struct AdminState {
    pool: PgPool,
    replayers: Arc<Vec<Arc<dyn Replay>>>,
}

impl AdminState {
    /// The replay of the consumer named `consumer`.
    fn replayer(&self, consumer: &str) -> Result<&Arc<dyn Replay>, ApiError> {
        self.replayers
            .iter()
            .find(|r| r.name() == consumer)
            .ok_or_else(|| ApiError::internal(format!("no consumer {consumer} in this service")))
    }
}

/// The columns [`DeadLetter::of`] reads.
const COLUMNS: &str =
    "id, consumer, message_key, topic, partition, \"offset\", event_type, error, attempts, created_at";

/// `/v1/admin/dead-letters`: list, show, replay, discard, skip, redrive.
pub fn routes(pool: PgPool, replayers: Vec<Arc<dyn Replay>>) -> Router {
    Router::new()
        .route("/v1/admin/dead-letters", get(list))
        .route("/v1/admin/dead-letters/replay", post(replay))
        .route("/v1/admin/dead-letters/redrive", post(redrive::redrive))
        .route("/v1/admin/dead-letters/{id}", get(show))
        .route("/v1/admin/dead-letters/{id}/discard", post(discard))
        .route("/v1/admin/dead-letters/{id}/skip", post(skip::skip))
        .with_state(AdminState {
            pool,
            replayers: Arc::new(replayers),
        })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only the dead letters of this message key (an order id).
    key: Option<String>,
}

/// A record a consumer could not handle, parked with its key.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub id: i64,
    pub consumer: String,
    /// The record's key: the order id; later records of it wait behind this one.
    pub key: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub event_type: Option<String>,
    /// Why it was parked.
    pub error: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

impl DeadLetter {
    fn of(r: &sqlx::postgres::PgRow) -> Self {
        Self {
            id: r.get("id"),
            consumer: r.get("consumer"),
            key: r.get("message_key"),
            topic: r.get("topic"),
            partition: r.get("partition"),
            offset: r.get("offset"),
            event_type: r.get("event_type"),
            error: r.get("error"),
            attempts: r.get("attempts"),
            created_at: r.get("created_at"),
        }
    }
}

/// The dead letters, and the keys they park.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetters {
    /// At most 1,000, oldest first.
    pub items: Vec<DeadLetter>,
    /// Keys whose later records wait until their dead letters are replayed
    /// (or discarded, or skipped).
    pub parked_keys: Vec<String>,
}

/// One dead letter with the record as it came.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetterRecord {
    #[serde(flatten)]
    pub letter: DeadLetter,
    /// The record's Kafka headers.
    pub headers: BTreeMap<String, String>,
    /// The record's value, hex.
    pub payload_hex: String,
    pub decoded: Decoded,
}

/// The record's envelope decoded, or why it does not decode.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Decoded {
    /// The envelope in Rust's debug form.
    Envelope(String),
    Undecodable {
        error: String,
    },
}

/// Replay the dead letters of a key.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayRequest {
    /// The message key (order id) whose dead letters are handled again, oldest first.
    key: String,
}

/// Each consumer's replay.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Replays {
    pub replays: Vec<ConsumerReplay>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConsumerReplay {
    pub consumer: String,
    pub report: ReplayReport,
}

/// Dead letters
///
/// Records the consumers could not handle, with the keys they park.
#[utoipa::path(get, path = "/v1/admin/dead-letters", tag = "operations", params(ListQuery),
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "dead letters and parked keys", body = DeadLetters)))]
pub(crate) async fn list(
    State(s): State<AdminState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<DeadLetters>, ApiError> {
    let rows = sqlx::query(
        "SELECT id, consumer, message_key, topic, partition, \"offset\", event_type, error, attempts, created_at
         FROM dead_letters WHERE $1::text IS NULL OR message_key = $1 ORDER BY id LIMIT 1000",
    )
    .bind(&q.key)
    .fetch_all(&s.pool)
    .await?;
    let parked: Vec<String> = sqlx::query_scalar("SELECT message_key FROM parked ORDER BY parked_at")
        .fetch_all(&s.pool)
        .await?;
    Ok(Json(DeadLetters {
        items: rows.iter().map(DeadLetter::of).collect(),
        parked_keys: parked,
    }))
}

/// A dead letter
///
/// One dead letter with its record: headers, value and the envelope decoded.
#[utoipa::path(get, path = "/v1/admin/dead-letters/{id}", tag = "operations",
    params(("id" = i64, Path, description = "the dead letter's id")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "the dead letter", body = DeadLetterRecord),
        (status = 404, description = "not_found: no such dead letter", body = crate::edge::http::ErrorBody),
        (status = 405, description = "method_not_allowed: `replay` and `redrive` are no ids but routes of their own, which take POST", body = crate::edge::http::ErrorBody),
    ))]
pub(crate) async fn show(
    State(s): State<AdminState>,
    Path(id): Path<i64>,
) -> Result<Json<DeadLetterRecord>, ApiError> {
    let row = sqlx::query(
        "SELECT id, consumer, message_key, topic, partition, \"offset\", event_type, error, attempts, created_at,
                payload, headers FROM dead_letters WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&s.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("no such dead letter"))?;
    let payload: Vec<u8> = row.get("payload");
    Ok(Json(DeadLetterRecord {
        letter: DeadLetter::of(&row),
        headers: row
            .get::<sqlx::types::Json<BTreeMap<String, String>>, _>("headers")
            .0,
        payload_hex: payload.iter().map(|b| format!("{b:02x}")).collect(),
        decoded: match decode(&payload) {
            Ok(env) => Decoded::Envelope(format!("{env:?}")),
            Err(error) => Decoded::Undecodable { error },
        },
    }))
}

/// Replay a key's dead letters
///
/// Every consumer of the service handles the key's dead letters again, oldest first; the key is unparked once none is left.
#[utoipa::path(post, path = "/v1/admin/dead-letters/replay", tag = "operations", request_body = ReplayRequest,
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "each consumer's replay", body = Replays)))]
pub(crate) async fn replay(
    State(s): State<AdminState>,
    ApiJson(req): ApiJson<ReplayRequest>,
) -> Result<Json<Replays>, ApiError> {
    let mut replays = Vec::new();
    for r in s.replayers.iter() {
        let report = r.replay(&req.key).await?;
        replays.push(ConsumerReplay {
            consumer: r.name().to_owned(),
            report,
        });
    }
    Ok(Json(Replays { replays }))
}

/// Discard a dead letter.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiscardRequest {
    /// Why it is never to be applied (kept with it; 1 to 500 characters).
    reason: String,
}

/// The dead letter discarded, and the replay of its key's later records.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Discarded {
    pub discarded: DeadLetter,
    pub reason: String,
    /// Its consumer's replay of the key's dead letters left, which unparks
    /// the key once none is left: the order's later records go on.
    pub replay: ConsumerReplay,
}

/// Discard a dead letter
///
/// A record no fix will make applicable (it cannot be read, or it is wrong
/// for good) is set aside with the reason given, kept in
/// `discarded_dead_letters`; then its consumer replays the key's later dead
/// letters, oldest first, and unparks the key once none is left. The audit
/// log records who did it.
#[utoipa::path(post, path = "/v1/admin/dead-letters/{id}/discard", tag = "operations",
    params(("id" = i64, Path, description = "the dead letter's id")),
    request_body = DiscardRequest,
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "discarded, and the key's later records replayed", body = Discarded),
        (status = 404, description = "not_found: no such dead letter", body = crate::edge::http::ErrorBody),
        (status = 422, description = "validation_failed: no reason, a reason over 500 characters, or one holding a NUL", body = crate::edge::http::ErrorBody),
    ))]
pub(crate) async fn discard(
    State(s): State<AdminState>,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<DiscardRequest>,
) -> Result<Json<Discarded>, ApiError> {
    let reason = req.reason.trim();
    // PostgreSQL's text holds no NUL: refused here, not by a failed insert.
    if reason.is_empty() || reason.chars().count() > 500 || reason.contains('\0') {
        return Err(ApiError::validation(
            "reason: say why the record is discarded, in 1 to 500 characters (no NUL)",
        ));
    }
    let letter = sqlx::query(
        "SELECT id, consumer, message_key, topic, partition, \"offset\", event_type, error, attempts, created_at
         FROM dead_letters WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&s.pool)
    .await?
    .map(|r| DeadLetter::of(&r))
    .ok_or_else(|| ApiError::not_found("no such dead letter"))?;
    let replayer = s
        .replayers
        .iter()
        .find(|r| r.name() == letter.consumer)
        .ok_or_else(|| ApiError::internal(format!("no consumer {} in this service", letter.consumer)))?;
    // The key's parked row first, as a replay takes it: a replay running
    // meanwhile finishes before the letter moves, or starts after.
    let mut tx = s.pool.begin().await?;
    sqlx::query("SELECT 1 FROM parked WHERE consumer = $1 AND message_key = $2 FOR UPDATE")
        .bind(&letter.consumer)
        .bind(&letter.key)
        .fetch_optional(&mut *tx)
        .await?;
    let moved = sqlx::query(
        "WITH gone AS (DELETE FROM dead_letters WHERE id = $1 RETURNING *)
         INSERT INTO discarded_dead_letters
         SELECT gone.*, $2 FROM gone",
    )
    .bind(id)
    .bind(reason)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved == 0 {
        return Err(ApiError::not_found(
            "no such dead letter (replayed or discarded meanwhile)",
        ));
    }
    tx.commit().await?;
    tracing::warn!(dead_letter = id, key = %letter.key, consumer = %letter.consumer, reason, "dead letter discarded");
    let report = replayer.replay(&letter.key).await?;
    Ok(Json(Discarded {
        replay: ConsumerReplay {
            consumer: letter.consumer.clone(),
            report,
        },
        discarded: letter,
        reason: reason.to_owned(),
    }))
}
