//! The notification database: who receives an order's messages
//! (`recipients`), the messages queued, sent and dead (`notifications`), and
//! the versions of their streams. One function per statement.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use omnisaga_runtime::TraceContext;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::domain::{Template, ALL, PREDECESSOR_WAIT};

/// Records who receives `order_id`'s messages; the first record stands.
pub async fn add_recipient(
    conn: &mut PgConnection,
    order_id: Uuid,
    customer_id: &str,
    order_number: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO recipients (order_id, customer_id, order_number) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(order_id)
    .bind(customer_id)
    .bind(order_number)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether a message of one of `templates` is queued or sent (or dead) for
/// `order_id`.
pub async fn told_any(
    conn: &mut PgConnection,
    order_id: Uuid,
    templates: &[Template],
) -> Result<bool, sqlx::Error> {
    let names: Vec<&str> = templates.iter().map(|t| t.name()).collect();
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM notifications WHERE order_id = $1 AND template = ANY($2))",
    )
    .bind(order_id)
    .bind(&names)
    .fetch_one(conn)
    .await
}

/// A message to queue for the event `source_event_id`.
pub struct NewMessage<'a> {
    pub notification_id: Uuid,
    pub order_id: Uuid,
    pub source_event_id: Uuid,
    pub source_event_type: &'a str,
    pub template: Template,
    pub correlation_id: &'a str,
    /// The trace its sending continues.
    pub trace: &'a TraceContext,
}

/// Queues `msg`, once per source event: a redelivered event queues nothing.
pub async fn queue(conn: &mut PgConnection, msg: &NewMessage<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notifications (notification_id, order_id, source_event_id, source_event_type, template,
                                    correlation_id, traceparent, tracestate)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (source_event_id) DO NOTHING",
    )
    .bind(msg.notification_id)
    .bind(msg.order_id)
    .bind(msg.source_event_id)
    .bind(msg.source_event_type)
    .bind(msg.template.name())
    .bind(msg.correlation_id)
    .bind(&msg.trace.traceparent)
    .bind(&msg.trace.tracestate)
    .execute(conn)
    .await?;
    Ok(())
}

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
    let held_back = rows.iter().any(|row| row.get::<Option<bool>, _>(11) == Some(true));
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

/// The current version of each of `streams` that has events; a stream
/// without any is left out.
pub async fn stream_versions(
    conn: &mut PgConnection,
    streams: &[String],
) -> Result<HashMap<String, i64>, sqlx::Error> {
    Ok(sqlx::query_as(
        "SELECT stream_id, max(version) FROM events WHERE stream_id = ANY($1) GROUP BY stream_id",
    )
    .bind(streams)
    .fetch_all(conn)
    .await?
    .into_iter()
    .collect())
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
/// claim; the send counts as an attempt. False when it is no longer queued
/// (another dispatcher recorded it after this one's claim ran out).
pub async fn mark_sent(
    conn: &mut PgConnection,
    id: Uuid,
    text: &str,
    channel: &str,
) -> Result<bool, sqlx::Error> {
    let marked = sqlx::query(
        "UPDATE notifications SET status = 'SENT', text = $2, channel = $3, sent_at = now(),
                attempts = attempts + 1, last_attempt_at = now(), next_attempt_at = NULL, claimed_until = NULL
         WHERE notification_id = $1 AND status = 'QUEUED'",
    )
    .bind(id)
    .bind(text)
    .bind(channel)
    .execute(conn)
    .await?;
    Ok(marked.rows_affected() == 1)
}

/// A message as the API lists it.
pub struct Notification {
    pub notification_id: Uuid,
    pub template: String,
    pub text: Option<String>,
    pub channel: Option<String>,
    pub status: String,
    pub source_event_type: String,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// The customer `order_id` was placed by, as far as this service heard.
pub async fn customer_of(pool: &PgPool, order_id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT customer_id FROM recipients WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await
}

/// The messages of `order_id`, queued, sent and dead, oldest first.
pub async fn list_for_order(pool: &PgPool, order_id: Uuid) -> Result<Vec<Notification>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT notification_id, template, text, channel, status, source_event_type, created_at, sent_at
         FROM notifications WHERE order_id = $1 ORDER BY created_at",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Notification {
            notification_id: r.get(0),
            template: r.get(1),
            text: r.get(2),
            channel: r.get(3),
            status: r.get(4),
            source_event_type: r.get(5),
            created_at: r.get(6),
            sent_at: r.get(7),
        })
        .collect())
}

/// A message as operators see it: who it is for and how its sends went.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Attempted {
    pub notification_id: Uuid,
    pub order_id: Uuid,
    /// `None` while the order's `OrderPlaced` has not arrived.
    pub customer_id: Option<String>,
    pub template: String,
    pub source_event_type: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub dead_at: Option<DateTime<Utc>>,
}

const ATTEMPTED: &str =
    "n.notification_id, n.order_id, r.customer_id, n.template, n.source_event_type, n.status,
     n.attempts, n.last_error, n.created_at, n.last_attempt_at, n.next_attempt_at, n.dead_at";

fn attempted(r: &sqlx::postgres::PgRow) -> Attempted {
    Attempted {
        notification_id: r.get(0),
        order_id: r.get(1),
        customer_id: r.get(2),
        template: r.get(3),
        source_event_type: r.get(4),
        status: r.get(5),
        attempts: r.get(6),
        last_error: r.get(7),
        created_at: r.get(8),
        last_attempt_at: r.get(9),
        next_attempt_at: r.get(10),
        dead_at: r.get(11),
    }
}

/// Up to `limit` dead messages, those given up first first.
pub async fn list_dead(pool: &PgPool, limit: i64) -> Result<Vec<Attempted>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {ATTEMPTED} FROM notifications n LEFT JOIN recipients r USING (order_id)
         WHERE n.status = 'DEAD' ORDER BY n.dead_at, n.notification_id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(attempted).collect())
}

/// Queues dead message `id` again as if new (no attempts, due at once; its
/// last error stays for the record); `None` when there is no dead message
/// `id`.
pub async fn retry_dead(pool: &PgPool, id: Uuid) -> Result<Option<Attempted>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "WITH n AS (
             UPDATE notifications SET status = 'QUEUED', attempts = 0, next_attempt_at = NULL, dead_at = NULL,
                                      claimed_until = NULL
             WHERE notification_id = $1 AND status = 'DEAD' RETURNING *)
         SELECT {ATTEMPTED} FROM n LEFT JOIN recipients r USING (order_id)"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.as_ref().map(attempted))
}

/// The status of message `id`, if there is one.
pub async fn status_of(pool: &PgPool, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT status FROM notifications WHERE notification_id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// How many messages are dead.
pub async fn count_dead(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM notifications WHERE status = 'DEAD'")
        .fetch_one(pool)
        .await
}
