//! Sends queued messages once the recipient is known (an order's payment
//! news may arrive before its `OrderPlaced`), in the order they were queued,
//! and records each as a `NotificationSent` event published by the outbox.

use std::{collections::HashMap, sync::Arc, time::Duration};

use anyhow::Result;
use chrono::Utc;
use omnisaga_proto::v1::{envelope::Payload, NotificationSent};
use omnisaga_runtime::{
    event::{self, EventMeta},
    outbox::{OutboxWaker, Written},
    store, TraceContext,
};
use sqlx::{postgres::PgRow, PgConnection, PgPool, Row};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    channel::{Channel, Message},
    templates::render,
};

/// Most messages sent and recorded in one transaction.
const BATCH: i64 = 32;

/// The event stream of an order's messages.
fn stream_of(order_id: Uuid) -> String {
    format!("notifications-{order_id}")
}

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
            let wait = match self.send_batch().await {
                Ok(sent) if sent > 0 => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
                // Messages are queued by this service's own commits, which
                // wake it; the poll is only a fallback.
                Ok(_) => IDLE_POLL,
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

    /// Sends the oldest sendable messages, up to [`BATCH`], in the order
    /// they were queued, and records them in one transaction; returns how
    /// many were sent. A message the channel refuses ends the batch: the
    /// ones sent before it are recorded (so none is sent twice), it and the
    /// rest stay queued.
    async fn send_batch(&self) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT n.notification_id, n.order_id, n.template, n.source_event_id, n.correlation_id,
                    n.traceparent, n.tracestate, r.customer_id, r.order_number
             FROM notifications n JOIN recipients r USING (order_id)
             WHERE n.status = 'QUEUED' ORDER BY n.created_at LIMIT $1 FOR UPDATE OF n SKIP LOCKED",
        )
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        // Each order's messages are one stream: its version now, once for all.
        let streams: Vec<String> = rows.iter().map(|row| stream_of(row.get::<Uuid, _>(1))).collect();
        let mut versions: HashMap<String, i64> = sqlx::query_as(
            "SELECT stream_id, max(version) FROM events WHERE stream_id = ANY($1) GROUP BY stream_id",
        )
        .bind(&streams)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let mut sent: Vec<(Uuid, String)> = Vec::with_capacity(rows.len());
        let mut refused = None;
        for (row, stream) in rows.iter().zip(streams) {
            let version = versions.entry(stream.clone()).or_insert(0);
            match self.send(&mut tx, row, &stream, *version).await? {
                Ok(done) => {
                    *version += 1;
                    sent.push(done);
                }
                Err(channel) => {
                    // Nothing of it was written: the transaction holds the
                    // ones sent before it.
                    refused = Some(channel);
                    break;
                }
            }
        }
        if !sent.is_empty() {
            let (ids, texts): (Vec<Uuid>, Vec<String>) = sent.iter().cloned().unzip();
            sqlx::query(
                "UPDATE notifications n SET status = 'SENT', text = u.text, channel = $3, sent_at = now()
                 FROM unnest($1::uuid[], $2::text[]) AS u(id, text) WHERE n.notification_id = u.id",
            )
            .bind(&ids)
            .bind(&texts)
            .bind(self.channel.name())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            // The dispatcher looks for the next batch itself.
            self.waker.wake_for(Written::OUTBOX);
        }
        match refused {
            Some(e) => Err(e),
            None => Ok(sent.len()),
        }
    }

    /// Sends one queued message and records it as the next event of its
    /// stream, with its outbox row, in `tx`; its span continues the trace of
    /// the event that queued it. The inner error is the channel's refusal,
    /// before anything was written; the outer one a database error, after
    /// which the transaction is lost (the messages sent in it go out again
    /// later, under the same notification ids the channel dedupes on).
    async fn send(
        &self,
        tx: &mut PgConnection,
        row: &PgRow,
        stream: &str,
        version: i64,
    ) -> Result<Result<(Uuid, String)>> {
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
            let msg = Message {
                notification_id: id,
                customer_id: row.get(7),
                text: text.clone(),
            };
            if let Err(refused) = self.channel.send(&msg).await {
                return Ok(Err(refused));
            }

            let meta = EventMeta {
                correlation_id,
                causation_id: source.to_string(),
                trace: TraceContext::current(),
            };
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
            store::append_publishing(
                &mut *tx,
                stream,
                version,
                std::slice::from_ref(&envelope),
                |_| true,
                &self.notifications_topic,
                &meta.trace,
            )
            .await?;
            Ok(Ok((id, text)))
        }
        .instrument(span)
        .await
    }
}
