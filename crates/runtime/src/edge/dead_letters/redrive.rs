//! `POST /v1/admin/dead-letters/redrive`: every parked key whose dead
//! letters match the filters replayed at once, after a fix. A key is
//! replayed whole, as `replay` does it: its first dead letter (the record
//! that failed and parks it) and the records parked behind it, which never
//! were tried on their own, oldest first, so each order's records are
//! applied in their order. The filters pick keys by that first dead letter:
//! a matching record behind a first one they leave out is not replayed
//! (that would apply it before the record it came after) but listed as
//! held behind it.

use std::time::Duration;

use axum::{extract::State, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{AdminState, DeadLetter, COLUMNS};
use crate::{
    edge::http::{ApiError, ApiJson},
    messaging::consumer::dead_letter::ReplayReport,
};

/// Keys a call handles unless `limit` says otherwise.
const DEFAULT_LIMIT: i64 = 100;
/// Most keys one call handles.
const MAX_LIMIT: i64 = 500;
/// A redrive stops taking new keys after this long, well inside the
/// request's deadline, and says where to go on (`next_after`).
const BUDGET: Duration = Duration::from_secs(5);
/// Most held dead letters listed.
const MAX_HELD: usize = 1000;

/// Which dead letters to replay. Every filter given must match.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedriveRequest {
    /// Only keys whose first dead letter came from this topic: its full
    /// name, or its name without the prefix (`orders.v1`).
    #[schema(min_length = 1, max_length = 200)]
    topic: Option<String>,
    /// Only keys whose first dead letter is of this event type, e.g. `OrderPlaced`.
    #[schema(min_length = 1, max_length = 200)]
    event_type: Option<String>,
    /// Only keys whose first dead letter was kept at or after this time.
    from: Option<DateTime<Utc>>,
    /// Only keys whose first dead letter was kept before this time (after `from`).
    to: Option<DateTime<Utc>>,
    /// List what would be replayed and replay nothing.
    #[serde(default)]
    dry_run: bool,
    /// Only keys whose first dead letter's id is above this: the previous answer's `next_after`.
    after: Option<i64>,
    /// Most keys handled, 1 to 500 [default 100].
    #[schema(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// What a redrive replayed, or in a dry run would.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Redrive {
    pub dry_run: bool,
    /// The keys, by their first dead letter's id.
    pub keys: Vec<RedrivenKey>,
    /// Dead letters that match the filters but wait behind an earlier one
    /// of their key that does not: not replayed (replay, discard or skip
    /// that one first). At most 1,000.
    pub held: Vec<Held>,
    /// Set when keys are left (more than `limit`, or the call ran out of
    /// time): pass it as `after` to go on.
    pub next_after: Option<i64>,
}

/// One key of a consumer, replayed whole.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RedrivenKey {
    pub consumer: String,
    pub key: String,
    /// Its dead letters in their order: the first, which matched the
    /// filters, then those parked behind it.
    pub letters: Vec<DeadLetter>,
    /// How the replay went; none in a dry run.
    pub report: Option<ReplayReport>,
}

/// A matching dead letter kept behind a first one the filters leave out.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Held {
    pub letter: DeadLetter,
    /// The id of its key's first dead letter.
    pub behind: i64,
}

/// The filters, checked.
struct Filters {
    topic: Option<String>,
    event_type: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: i64,
}

impl Filters {
    fn of(req: &RedriveRequest) -> Result<Self, ApiError> {
        let text = |name: &str, v: &Option<String>| -> Result<Option<String>, ApiError> {
            match v.as_deref() {
                Some(t)
                    if t.trim().is_empty() || t.chars().count() > 200 || t.chars().any(char::is_control) =>
                {
                    Err(ApiError::validation(format!(
                        "{name}: 1 to 200 characters and no control character, or leave it out"
                    )))
                }
                t => Ok(t.map(|t| t.trim().to_owned())),
            }
        };
        if let (Some(from), Some(to)) = (req.from, req.to) {
            if from >= to {
                return Err(ApiError::validation("to: must come after from"));
            }
        }
        let limit = req.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::validation("limit: 1 to 500"));
        }
        Ok(Self {
            topic: text("topic", &req.topic)?,
            event_type: text("event_type", &req.event_type)?,
            from: req.from,
            to: req.to,
            limit,
        })
    }
}

/// Redrive dead letters
///
/// Replays every parked key whose first dead letter matches the filters
/// (topic, event type, when it was kept), each whole and oldest first as
/// `replay` does: the key's records stay in their order, and the key is
/// unparked once none is left. `dry_run` lists the keys and their dead
/// letters and changes nothing. A call handles up to `limit` keys and
/// stops taking new ones after 5 s; `next_after` then says where to go on.
/// The audit log records who did it.
#[utoipa::path(post, path = "/v1/admin/dead-letters/redrive", tag = "operations", request_body = RedriveRequest,
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "the keys replayed (or, in a dry run, to be) and the matching dead letters held behind others", body = Redrive),
        (status = 422, description = "validation_failed: an empty or over-long filter or one with a control character, `to` not after `from`, `limit` outside 1 to 500, or an unknown field; nothing was replayed", body = crate::edge::http::ErrorBody),
    ))]
pub(crate) async fn redrive(
    State(s): State<AdminState>,
    ApiJson(req): ApiJson<RedriveRequest>,
) -> Result<Json<Redrive>, ApiError> {
    let filters = Filters::of(&req)?;
    let started = std::time::Instant::now();
    let matching = sqlx::query(&format!(
        "SELECT * FROM (
             SELECT {COLUMNS}, first_value(id) OVER (PARTITION BY consumer, message_key ORDER BY id) AS head
             FROM dead_letters) d
         WHERE ($1::text IS NULL OR topic = $1 OR right(topic, length($1) + 1) = '.' || $1)
           AND ($2::text IS NULL OR event_type = $2)
           AND ($3::timestamptz IS NULL OR created_at >= $3)
           AND ($4::timestamptz IS NULL OR created_at < $4)
         ORDER BY id"
    ))
    .bind(&filters.topic)
    .bind(&filters.event_type)
    .bind(filters.from)
    .bind(filters.to)
    .fetch_all(&s.pool)
    .await?;
    let matched: std::collections::HashSet<i64> = matching.iter().map(|r| r.get("id")).collect();
    let mut heads = Vec::new();
    let mut held = Vec::new();
    for row in &matching {
        let (id, head): (i64, i64) = (row.get("id"), row.get("head"));
        if id == head {
            if req.after.is_none_or(|after| id > after) {
                heads.push(DeadLetter::of(row));
            }
        } else if !matched.contains(&head) && held.len() < MAX_HELD {
            held.push(Held {
                letter: DeadLetter::of(row),
                behind: head,
            });
        }
    }
    let mut keys = Vec::new();
    let mut next_after = None;
    let total = heads.len();
    for (n, head) in heads.into_iter().enumerate() {
        let out_of_time = !req.dry_run && started.elapsed() > BUDGET;
        if n as i64 >= filters.limit || out_of_time {
            next_after = keys
                .last()
                .map(|k: &RedrivenKey| k.letters[0].id)
                .or(req.after)
                .or(Some(0));
            break;
        }
        keys.push(redrive_key(&s, head, req.dry_run).await?);
    }
    if next_after.is_some() {
        tracing::info!(
            handled = keys.len(),
            total,
            "redrive stopped early; the caller goes on"
        );
    }
    let replayed: u32 = keys
        .iter()
        .filter_map(|k| k.report.as_ref())
        .map(|r| r.replayed)
        .sum();
    tracing::warn!(
        keys = keys.len(),
        replayed,
        dry_run = req.dry_run,
        topic = ?filters.topic,
        event_type = ?filters.event_type,
        "dead letters redriven"
    );
    Ok(Json(Redrive {
        dry_run: req.dry_run,
        keys,
        held,
        next_after,
    }))
}

/// The key `head` parks: its dead letters, and unless `dry_run` its
/// consumer's replay of them.
async fn redrive_key(s: &AdminState, head: DeadLetter, dry_run: bool) -> Result<RedrivenKey, ApiError> {
    let letters: Vec<DeadLetter> = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM dead_letters WHERE consumer = $1 AND message_key = $2 AND id >= $3 ORDER BY id"
    ))
    .bind(&head.consumer)
    .bind(&head.key)
    .bind(head.id)
    .fetch_all(&s.pool)
    .await?
    .iter()
    .map(DeadLetter::of)
    .collect();
    let report = if dry_run {
        None
    } else {
        Some(s.replayer(&head.consumer)?.replay(&head.key).await?)
    };
    Ok(RedrivenKey {
        consumer: head.consumer.clone(),
        key: head.key.clone(),
        letters: if letters.is_empty() { vec![head] } else { letters },
        report,
    })
}
