//! Sends queued messages once the recipient is known (an order's payment
//! news may arrive before its `OrderPlaced`), in the order they were queued,
//! and records each as a `NotificationSent` event published by the outbox.

use std::{sync::Arc, time::Duration};

use anyhow::Result;
use chrono::Utc;
use omnisaga_proto::v1::{envelope::Payload, NotificationSent};
use omnisaga_runtime::{
    event::{self, EventMeta},
    outbox::{OutboxWaker, Written},
    TraceContext,
};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    channel::{Channel, Message},
    domain::render,
    store::{self, Queued},
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
        let queued = store::lock_queued(&mut tx, BATCH).await?;
        if queued.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        // Each order's messages are one stream: its version now, once for all.
        let streams: Vec<String> = queued.iter().map(|q| stream_of(q.order_id)).collect();
        let mut versions = store::stream_versions(&mut tx, &streams).await?;
        let mut sent: Vec<(Uuid, String)> = Vec::with_capacity(queued.len());
        let mut refused = None;
        for (msg, stream) in queued.into_iter().zip(streams) {
            let version = versions.entry(stream.clone()).or_insert(0);
            match self.send(&mut tx, msg, &stream, *version).await? {
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
            store::mark_sent(&mut tx, &ids, &texts, self.channel.name()).await?;
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
        queued: Queued,
        stream: &str,
        version: i64,
    ) -> Result<Result<(Uuid, String)>> {
        let Queued {
            notification_id: id,
            order_id,
            template,
            source_event_id: source,
            correlation_id,
            trace: parent,
            customer_id,
            order_number,
        } = queued;
        let span = tracing::info_span!(
            "notify",
            otel.name = %format!("send {template}"),
            order.id = %order_id,
            notification.id = %id,
            request.id = %correlation_id,
        );
        parent.attach(&span);
        async move {
            let text = render(&template, &order_number);
            let msg = Message {
                notification_id: id,
                customer_id,
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
            omnisaga_runtime::store::append_publishing(
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
