//! Sends queued messages once the recipient is known (an order's payment
//! news may arrive before its `OrderPlaced`), in the order they were queued,
//! and records each as a `NotificationSent` event of the order's
//! notification stream through the runtime's executor, published by the
//! outbox. It is the runtime's durable-work loop (`work::run`) over the queue.

use std::{sync::Arc, time::Duration};

use anyhow::Result;
use async_trait::async_trait;
use omnisaga_proto::v1::NotificationSent;
use omnisaga_runtime::{
    aggregate::{Aggregate, ExecuteError, Executor, Loaded},
    event::EventMeta,
    outbox::{OutboxWaker, Written},
    work::{self, Claimed, Then, Wakes, Worker},
    TraceContext,
};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    channel::{Channel, Message},
    domain::{render, Command, Messages, MessagesAggregate},
    store::{self, Queued},
};

/// Most messages sent and recorded in one transaction.
const BATCH: i64 = 32;

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
        let waker = self.waker.clone();
        work::run(self, waker, Wakes::Work, shutdown).await
    }
}

#[async_trait]
impl Worker for Dispatcher {
    /// The oldest sendable messages, locked in their transaction.
    type Work = (Transaction<'static, Postgres>, Vec<Queued>);

    fn name(&self) -> &'static str {
        "dispatcher"
    }

    /// Up to [`BATCH`] sendable messages, oldest first. Messages are queued
    /// by this service's own commits, which wake it; the poll is a fallback.
    async fn claim(&self) -> Result<Claimed<Self::Work>> {
        let mut tx = self.pool.begin().await?;
        let queued = store::lock_queued(&mut tx, BATCH).await?;
        if queued.is_empty() {
            tx.rollback().await?;
            return Ok(Claimed::Wait(IDLE_POLL));
        }
        Ok(Claimed::Work {
            work: (tx, queued),
            then: Then::LookAgain,
        })
    }

    /// Sends the claimed messages in the order they were queued and records
    /// them in one transaction. A message the channel refuses ends the
    /// batch: the ones sent before it are recorded (so none is sent twice),
    /// it and the rest stay queued.
    async fn work(&self, (mut tx, queued): Self::Work) -> Result<()> {
        // Each order's messages are one stream: its version now, once for all.
        let streams: Vec<String> = queued
            .iter()
            .map(|q| MessagesAggregate::stream(&q.order_id.to_string()))
            .collect();
        let mut versions = store::stream_versions(&mut tx, &streams).await?;
        let mut sent: Vec<(Uuid, String)> = Vec::with_capacity(queued.len());
        let mut refused = None;
        for (msg, stream) in queued.into_iter().zip(streams) {
            let version = versions.entry(stream).or_insert(0);
            match self.send(&mut tx, msg, *version).await? {
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
            let (ids, texts): (Vec<Uuid>, Vec<String>) = sent.into_iter().unzip();
            store::mark_sent(&mut tx, &ids, &texts, self.channel.name()).await?;
            tx.commit().await?;
            // The dispatcher looks for the next batch itself.
            self.waker.wake_for(Written::OUTBOX);
        }
        match refused {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Dispatcher {
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
            let sent = NotificationSent {
                order_id: order.clone(),
                notification_id: id.to_string(),
                channel: self.channel.name().to_owned(),
                template,
                text: text.clone(),
                source_event_id: source.to_string(),
            };
            // Decided over the version read for the whole batch: the
            // aggregate has no rule that needs the events themselves.
            let loaded = Loaded {
                state: Messages::default(),
                version,
                history: Vec::new(),
            };
            let executor = Executor::<MessagesAggregate>::new(&self.notifications_topic);
            match executor
                .decide(&mut *tx, &order, loaded, Command::RecordSent(sent), None, &meta)
                .await
            {
                Ok(_) => {}
                Err(ExecuteError::Store(e)) => return Err(e.into()),
                Err(e) => anyhow::bail!("message not recorded: {e}"),
            }
            Ok(Ok((id, text)))
        }
        .instrument(span)
        .await
    }
}
