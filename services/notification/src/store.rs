//! The notification database: who receives an order's messages
//! (`recipients`), the messages queued, sent and dead (`notifications`), and
//! the versions of their streams; the dispatcher's claims and outcomes in
//! `dispatch`, the sent messages a rebuild writes in `sent`. Every
//! statement of the service is in this module, one function per statement.

use chrono::{DateTime, Utc};
use omnisaga_runtime::TraceContext;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::domain::Template;

mod dispatch;
mod sent;

pub use dispatch::*;
pub use sent::*;

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

/// The statuses of the `shipped` messages of `order_ids` (an order may have
/// none, or several): (order, status).
pub async fn shipped_statuses(
    conn: &mut PgConnection,
    order_ids: &[Uuid],
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT order_id, status FROM notifications WHERE order_id = ANY($1) AND template = 'shipped'",
    )
    .bind(order_ids)
    .fetch_all(conn)
    .await
}
