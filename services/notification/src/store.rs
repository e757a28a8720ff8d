//! The notification database: who receives an order's messages
//! (`recipients`), the messages queued and sent (`notifications`), and the
//! versions of their streams. One function per statement.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use omnisaga_runtime::TraceContext;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::domain::Template;

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

/// Whether the customer of `order_id` was told it is cancelled (its
/// `order_cancelled` message is queued or sent).
pub async fn told_cancelled(conn: &mut PgConnection, order_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM notifications WHERE order_id = $1 AND template = $2)")
        .bind(order_id)
        .bind(Template::OrderCancelled.name())
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
}

/// Locks the oldest `limit` queued messages whose recipient is known, in
/// the order they were queued, skipping those another dispatcher holds.
pub async fn lock_queued(conn: &mut PgConnection, limit: i64) -> Result<Vec<Queued>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT n.notification_id, n.order_id, n.template, n.source_event_id, n.correlation_id,
                n.traceparent, n.tracestate, r.customer_id, r.order_number
         FROM notifications n JOIN recipients r USING (order_id)
         WHERE n.status = 'QUEUED' ORDER BY n.created_at LIMIT $1 FOR UPDATE OF n SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
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
        })
        .collect())
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

/// Marks the messages `ids` sent through `channel`, each with its text
/// (`texts`, in the same order).
pub async fn mark_sent(
    conn: &mut PgConnection,
    ids: &[Uuid],
    texts: &[String],
    channel: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifications n SET status = 'SENT', text = u.text, channel = $3, sent_at = now()
         FROM unnest($1::uuid[], $2::text[]) AS u(id, text) WHERE n.notification_id = u.id",
    )
    .bind(ids)
    .bind(texts)
    .bind(channel)
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

/// The messages of `order_id`, queued and sent, oldest first.
/// The customer `order_id` was placed by, as far as this service heard.
pub async fn customer_of(pool: &PgPool, order_id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT customer_id FROM recipients WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await
}

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
