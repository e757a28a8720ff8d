//! The sent messages as a rebuild makes them again from the
//! `NotificationSent` events (`crate::projection`): each event's row.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// A sent message as its `NotificationSent` event and the event's envelope
/// say it: the columns of `notifications` they decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRow {
    pub notification_id: Uuid,
    pub order_id: Uuid,
    pub source_event_id: Uuid,
    pub template: String,
    pub text: String,
    pub channel: String,
    /// The correlation id of the event that queued it, which the event
    /// carries on.
    pub correlation_id: String,
    /// The event's time, which the dispatcher stamps it with.
    pub sent_at: DateTime<Utc>,
}

/// Writes `rows` as sent messages, in one statement; a message already
/// there takes what its row says, and keeps its other columns.
pub async fn upsert_sent(conn: &mut PgConnection, rows: &[SentRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&SentRow) -> Uuid| rows.iter().map(f).collect::<Vec<_>>();
    let text = |f: fn(&SentRow) -> &str| rows.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO notifications (notification_id, order_id, source_event_id, template, text, channel,
                                    correlation_id, sent_at, status)
         SELECT *, 'SENT' FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                                      $7::text[], $8::timestamptz[])
         ON CONFLICT (notification_id) DO UPDATE SET order_id = excluded.order_id,
             source_event_id = excluded.source_event_id, template = excluded.template, text = excluded.text,
             channel = excluded.channel, correlation_id = excluded.correlation_id,
             sent_at = excluded.sent_at, status = 'SENT'",
    )
    .bind(column(|r| r.notification_id))
    .bind(column(|r| r.order_id))
    .bind(column(|r| r.source_event_id))
    .bind(text(|r| &r.template))
    .bind(text(|r| &r.text))
    .bind(text(|r| &r.channel))
    .bind(text(|r| &r.correlation_id))
    .bind(rows.iter().map(|r| r.sent_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}
