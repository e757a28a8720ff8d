//! Sends queued messages once the recipient is known (an order's payment
//! news may arrive before its `OrderPlaced`), in the order they were queued,
//! and records each as a `NotificationSent` event published by the outbox.

use std::{sync::Arc, time::Duration};

use anyhow::Result;
use chrono::Utc;
use omnisaga_proto::v1::{envelope::Payload, NotificationSent};
use omnisaga_runtime::{
    event::{self, EventMeta},
    outbox::{self, OutboxWaker},
    store, TraceContext,
};
use sqlx::{PgPool, Row};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    channel::{Channel, Message},
    templates::render,
};

/// Longest the dispatcher sleeps with nothing to send before looking again.
const IDLE_POLL: Duration = Duration::from_secs(1);

pub struct Dispatcher {
    pub pool: PgPool,
    pub waker: OutboxWaker,
    pub channel: Arc<dyn Channel>,
    pub notifications_topic: String,
}

impl Dispatcher {
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            // Listening before looking: a message queued meanwhile wakes it at once.
            let committed = self.waker.committed();
            tokio::pin!(committed);
            committed.as_mut().enable();
            let wait = match self.send_one().await {
                Ok(true) => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
                // Messages are queued by this service's own commits, which
                // wake it; the poll is only a fallback.
                Ok(false) => IDLE_POLL,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "dispatch failed, retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {},
                        _ = shutdown.cancelled() => {},
                    }
                    continue;
                }
            };
            tokio::select! {
                _ = committed => {},
                _ = tokio::time::sleep(wait) => {},
                _ = shutdown.cancelled() => {},
            }
        }
        Ok(())
    }

    /// Sends the oldest sendable message; false when there is none.
    async fn send_one(&self) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query(
            "SELECT n.notification_id, n.order_id, n.template, n.source_event_id, n.correlation_id,
                    n.traceparent, n.tracestate, r.customer_id, r.order_number
             FROM notifications n JOIN recipients r USING (order_id)
             WHERE n.status = 'QUEUED' ORDER BY n.created_at LIMIT 1 FOR UPDATE OF n SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(false);
        };
        let id: Uuid = row.get(0);
        let order_id: Uuid = row.get(1);
        let template: String = row.get(2);
        let source: Uuid = row.get(3);
        let correlation_id: String = row.get(4);
        let parent = TraceContext {
            traceparent: row.get(5),
            tracestate: row.get(6),
        };
        let span = tracing::info_span!(
            "notify",
            otel.name = %format!("send {template}"),
            order.id = %order_id,
            notification.id = %id,
            request.id = %correlation_id,
        );
        parent.attach(&span);
        async move {
            let text = render(&template, &row.get::<String, _>(8));
            let msg = Message { notification_id: id, customer_id: row.get(7), text: text.clone() };
            self.channel.send(&msg).await?;

            let meta = EventMeta { correlation_id, causation_id: source.to_string(), trace: TraceContext::current() };
            let order = order_id.to_string();
            let payload = Payload::NotificationSent(NotificationSent {
                order_id: order.clone(),
                notification_id: id.to_string(),
                channel: self.channel.name().to_owned(),
                template,
                text: text.clone(),
                source_event_id: source.to_string(),
            });
            let envelope = event::envelope("notification", &order, payload, &meta, Utc::now());
            let stream = format!("notifications-{order}");
            let version: i64 = sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1")
                .bind(&stream)
                .fetch_one(&mut *tx)
                .await?;
        store::append(&mut tx, &stream, version, std::slice::from_ref(&envelope)).await?;
        outbox::enqueue(&mut tx, &self.notifications_topic, &envelope, &meta.trace).await?;
        sqlx::query("UPDATE notifications SET status = 'SENT', text = $2, channel = $3, sent_at = now() WHERE notification_id = $1")
            .bind(id)
            .bind(&text)
            .bind(self.channel.name())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.waker.wake();
        Ok(true)
        }
        .instrument(span)
        .await
    }
}
