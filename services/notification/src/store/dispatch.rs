//! The dispatcher's side of the message queue: claim the due messages,
//! then record each send's outcome (sent, refused and due again, dead or
//! stale), and the versions of the streams it appends to.

use std::time::Duration;

use chrono::{DateTime, Utc};
use omnisaga_runtime::TraceContext;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::domain::{ALL, PREDECESSOR_WAIT};

/// A queued message whose recipient is known, as the dispatcher sends it.
pub struct Queued {
    pub notification_id: Uuid,
    pub order_id: Uuid,
    pub template: String,
    pub source_event_id: Uuid,
    pub correlation_id: String,
    /// The trace of the event that queued it.
    pub trace: TraceContext,
    pub customer_id: String,
    pub order_number: String,
    /// Sends the channel refused so far.
    pub attempts: u32,
    /// A message that makes this one stale ([`Template::superseded_by`])
    /// was queued since: it is not sent.
    pub stale: bool,
}

/// What a dispatcher's look found.
pub struct Look {
    /// The messages it claimed.
    pub queued: Vec<Queued>,
    /// Whether the order of a claimed message has more queued behind it,
    /// sendable once the claimed one is recorded.
    pub held_back: bool,
    /// How long until the first message waiting after a refusal falls due,
    /// if one waits.
    pub next_due: Option<Duration>,
}

/// Claims, for `lease`, the oldest `limit` queued messages that are due
/// (never tried, or their wait after a refusal is over), unclaimed (or
/// their claim ran out), whose recipient is known, whose predecessor
/// ([`Template::follows`]) is queued or has waited long enough
/// ([`PREDECESSOR_WAIT`]), and which are the earliest queued message of
/// their order: at most one per order, so an order's messages go out one
/// at a time and in the saga's order whoever sends them. "Earliest" is by
/// the source event's id, a UUIDv7 its service made when the step
/// happened, not by when this service read it: a backlog read across
/// topics is queued out of order. Each comes with whether it went stale
/// while it waited. One statement, committed before the caller sends: run
/// on the pool, nothing else holds the claim. It also says whether a
/// claimed message's order has more queued behind it and how long until
/// the first message waiting after a refusal falls due: what the next look
/// may find.
pub async fn claim_queued(pool: &PgPool, limit: i64, lease: Duration) -> Result<Look, sqlx::Error> {
    let (held, needs): (Vec<&str>, Vec<&str>) = ALL
        .into_iter()
        .filter_map(|t| t.follows().map(|before| (t.name(), before.name())))
        .unzip();
    let (stale, by): (Vec<&str>, Vec<&str>) = ALL
        .into_iter()
        .flat_map(|t| t.superseded_by().iter().map(move |by| (t.name(), by.name())))
        .unzip();
    let rows = sqlx::query(
        "WITH next AS (
             SELECT n.notification_id FROM notifications n
             WHERE n.status = 'QUEUED' AND (n.next_attempt_at IS NULL OR n.next_attempt_at <= now())
               AND (n.claimed_until IS NULL OR n.claimed_until <= clock_timestamp())
               AND EXISTS (SELECT 1 FROM recipients r WHERE r.order_id = n.order_id)
               AND NOT EXISTS (
                   SELECT 1 FROM notifications o
                   WHERE o.order_id = n.order_id AND o.status = 'QUEUED'
                     AND (o.source_event_id, o.notification_id) < (n.source_event_id, n.notification_id))
               AND NOT EXISTS (
                   SELECT 1 FROM unnest($3::text[], $4::text[]) AS f(template, needs)
                   WHERE f.template = n.template
                     AND n.created_at > clock_timestamp() - $5 * interval '1 microsecond'
                     AND NOT EXISTS (SELECT 1 FROM notifications p
                                     WHERE p.order_id = n.order_id AND p.template = f.needs))
             ORDER BY n.created_at LIMIT $1 FOR UPDATE OF n SKIP LOCKED),
         claimed AS (
             UPDATE notifications n SET claimed_until = clock_timestamp() + $2 * interval '1 microsecond'
             FROM next, recipients r
             WHERE n.notification_id = next.notification_id AND r.order_id = n.order_id
             RETURNING n.notification_id, n.order_id, n.template, n.source_event_id, n.correlation_id,
                       n.traceparent, n.tracestate, r.customer_id, r.order_number, n.attempts,
                       EXISTS (SELECT 1 FROM unnest($6::text[], $7::text[]) AS s(template, by)
                               JOIN notifications x ON x.order_id = n.order_id AND x.template = s.by
                               WHERE s.template = n.template) AS stale,
                       EXISTS (SELECT 1 FROM notifications b
                               WHERE b.order_id = n.order_id AND b.status = 'QUEUED'
                                 AND b.notification_id <> n.notification_id) AS behind)
         SELECT c.*, w.next_due
         FROM (SELECT EXTRACT(EPOCH FROM min(q.next_attempt_at) - now())::float8 AS next_due
               FROM notifications q WHERE q.status = 'QUEUED' AND q.next_attempt_at > now()) w
         LEFT JOIN claimed c ON true",
    )
    .bind(limit)
    .bind(lease.as_micros() as f64)
    .bind(&held)
    .bind(&needs)
    .bind(PREDECESSOR_WAIT.as_micros() as f64)
    .bind(&stale)
    .bind(&by)
    .fetch_all(pool)
    .await?;
    // With none claimed, one row: no message, and the wait.
    let next_due: Option<f64> = rows.first().and_then(|row| row.get(12));
    let held_back = rows
        .iter()
        .any(|row| row.get::<Option<bool>, _>(11) == Some(true));
    let queued = rows
        .iter()
        .filter(|row| row.get::<Option<Uuid>, _>(0).is_some())
        .map(|row| Queued {
            notification_id: row.get(0),
            order_id: row.get(1),
            template: row.get(2),
            source_event_id: row.get(3),
            correlation_id: row.get(4),
            trace: TraceContext {
                traceparent: row.get(5),
                tracestate: row.get(6),
            },
            customer_id: row.get(7),
            order_number: row.get(8),
            attempts: row.get::<i32, _>(9).max(0) as u32,
            stale: row.get(10),
        })
        .collect();
    Ok(Look {
        queued,
        held_back,
        next_due: next_due.map(|s| Duration::from_secs_f64(s.max(0.0))),
    })
}

/// Records that the channel refused message `id` at its `attempts`-th send
/// with `error`; it falls due again after `wait`.
pub async fn retry_later(
    conn: &mut PgConnection,
    id: Uuid,
    attempts: u32,
    error: &str,
    wait: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifications SET attempts = $2, last_error = $3, last_attempt_at = clock_timestamp(),
                next_attempt_at = clock_timestamp() + $4 * interval '1 microsecond', claimed_until = NULL
         WHERE notification_id = $1",
    )
    .bind(id)
    .bind(attempts as i32)
    .bind(error)
    .bind(wait.as_micros() as f64)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives message `id` up: the channel refused its `attempts`-th and last
/// send with `error`. It stays, `DEAD`, until an operator retries it.
pub async fn mark_dead(
    conn: &mut PgConnection,
    id: Uuid,
    attempts: u32,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifications SET status = 'DEAD', attempts = $2, last_error = $3,
                last_attempt_at = clock_timestamp(), dead_at = clock_timestamp(), next_attempt_at = NULL,
                claimed_until = NULL
         WHERE notification_id = $1",
    )
    .bind(id)
    .bind(attempts as i32)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives up the claims on messages `ids` that are still queued; how many.
pub async fn release_claims(pool: &PgPool, ids: &[Uuid]) -> Result<u64, sqlx::Error> {
    let released = sqlx::query(
        "UPDATE notifications SET claimed_until = NULL WHERE notification_id = ANY($1) AND status = 'QUEUED'",
    )
    .bind(ids)
    .execute(pool)
    .await?;
    Ok(released.rows_affected())
}

/// Leaves message `id` unsent for good: a later message made it stale.
pub async fn mark_stale(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifications SET status = 'STALE', claimed_until = NULL, next_attempt_at = NULL
         WHERE notification_id = $1 AND status = 'QUEUED'",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks message `id` sent through `channel` with its `text` and ends its
/// claim; the send counts as an attempt. Returns, in the same statement,
/// the version of `stream` (0 when it has no event yet) for the event that
/// records the send, and the time it was sent (the transaction's), which
/// that event is stamped with; `None` when the message is no longer queued
/// (another dispatcher recorded it after this one's claim ran out).
pub async fn mark_sent(
    conn: &mut PgConnection,
    id: Uuid,
    text: &str,
    channel: &str,
    stream: &str,
) -> Result<Option<(i64, DateTime<Utc>)>, sqlx::Error> {
    let (sent_at, version): (Option<DateTime<Utc>>, i64) = sqlx::query_as(
        "WITH marked AS (
             UPDATE notifications SET status = 'SENT', text = $2, channel = $3, sent_at = now(),
                    attempts = attempts + 1, last_attempt_at = now(), next_attempt_at = NULL, claimed_until = NULL
             WHERE notification_id = $1 AND status = 'QUEUED'
             RETURNING sent_at
         )
         SELECT (SELECT sent_at FROM marked),
                coalesce((SELECT max(version) FROM events WHERE stream_id = $4), 0)",
    )
    .bind(id)
    .bind(text)
    .bind(channel)
    .bind(stream)
    .fetch_one(conn)
    .await?;
    Ok(sent_at.map(|at| (version, at)))
}
