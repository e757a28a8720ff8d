//! The sent messages (`notifications` rows `SENT`) as a projection of the
//! order's notification streams (`notifications-<order id>`), which keep
//! one `NotificationSent` per message the channel took: what `omnisaga
//! rebuild notification` makes again from them. Each event is one row, so
//! a batch folds event by event, in any order.
//!
//! Not projections: the messages queued, stale and dead (the dispatcher's
//! work, no event records them), and `recipients` (learnt from
//! `OrderPlaced`, which the streams do not keep).

use anyhow::Context as _;
use async_trait::async_trait;
use omnisaga_proto::v1::{envelope::Payload, Envelope};
use omnisaga_runtime::{
    event::occurred_at,
    projection::{Projection, Recorded, Table},
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::store::{self, SentRow};

/// The columns of a sent message its event decides. Not decided: when it
/// was queued (`created_at`), what queued it (`source_event_type`: a row a
/// rebuild adds says '', the column's default), the trace it continued
/// (`traceparent`, `tracestate`), and how its sends went (`attempts`,
/// `last_error`, `last_attempt_at`; `next_attempt_at`, `dead_at` and
/// `claimed_until` are NULL on every sent message).
pub const TABLES: &[Table] = &[Table {
    name: "notifications",
    key: &["notification_id"],
    columns: &[
        "notification_id",
        "order_id",
        "source_event_id",
        "template",
        "text",
        "channel",
        "status",
        "correlation_id",
        "sent_at",
    ],
    rows: Some("status = 'SENT'"),
}];

/// The sent messages, folded from the notification streams.
pub struct SentMessages;

#[async_trait]
impl Projection for SentMessages {
    fn name(&self) -> &'static str {
        "sent_messages"
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[Recorded]) -> anyhow::Result<()> {
        let mut rows = Vec::with_capacity(events.len());
        for e in events {
            let row = sent_row(&e.envelope).with_context(|| format!("event at position {}", e.position))?;
            rows.extend(row);
        }
        store::upsert_sent(conn, &rows).await?;
        Ok(())
    }
}

/// The sent message `env` records, if it is a `NotificationSent`: what the
/// dispatcher wrote when the channel took it.
pub fn sent_row(env: &Envelope) -> anyhow::Result<Option<SentRow>> {
    let Some(Payload::NotificationSent(sent)) = &env.payload else {
        return Ok(None);
    };
    let id = |what: &str, s: &str| Uuid::parse_str(s).with_context(|| format!("{what} {s:?} is no UUID"));
    Ok(Some(SentRow {
        notification_id: id("notification_id", &sent.notification_id)?,
        order_id: id("order_id", &sent.order_id)?,
        source_event_id: id("source_event_id", &sent.source_event_id)?,
        template: sent.template.clone(),
        text: sent.text.clone(),
        channel: sent.channel.clone(),
        correlation_id: env.correlation_id.clone(),
        sent_at: occurred_at(env),
    }))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use omnisaga_proto::v1::{NotificationSent, OrderPlaced};
    use omnisaga_runtime::event::{envelope, EventMeta};

    use super::*;

    #[test]
    fn a_sent_event_is_its_row_at_its_time_and_anything_else_none() {
        let (id, order, source) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let sent = Payload::NotificationSent(NotificationSent {
            order_id: order.to_string(),
            notification_id: id.to_string(),
            channel: "log".into(),
            template: "shipped".into(),
            text: "Shipped: order OS-1 is on its way.".into(),
            source_event_id: source.to_string(),
        });
        let meta = EventMeta {
            correlation_id: "req-7".into(),
            ..Default::default()
        };
        let at = Utc.timestamp_opt(1_800_000_000, 123_456_000).unwrap();
        let env = envelope("notification", &order.to_string(), sent, &meta, at);
        assert_eq!(
            sent_row(&env).unwrap(),
            Some(SentRow {
                notification_id: id,
                order_id: order,
                source_event_id: source,
                template: "shipped".into(),
                text: "Shipped: order OS-1 is on its way.".into(),
                channel: "log".into(),
                correlation_id: "req-7".into(),
                sent_at: at,
            })
        );
        let placed = envelope(
            "order",
            &order.to_string(),
            Payload::OrderPlaced(OrderPlaced::default()),
            &meta,
            at,
        );
        assert_eq!(sent_row(&placed).unwrap(), None);
    }

    #[test]
    fn a_sent_event_naming_no_message_is_refused_by_name() {
        let sent = Payload::NotificationSent(NotificationSent {
            notification_id: "n-1".into(),
            ..Default::default()
        });
        let env = envelope("notification", "o-1", sent, &EventMeta::default(), Utc::now());
        let err = sent_row(&env).unwrap_err().to_string();
        assert!(err.contains("notification_id \"n-1\""), "{err}");
    }
}
