//! Sends queued messages once the recipient is known (an order's payment
//! news may arrive before its `OrderPlaced`), in the order they were queued,
//! and records each as a `NotificationSent` event of the order's
//! notification stream through the runtime's executor, published by the
//! outbox. It is the runtime's durable-work loop (`work::run`) over the queue.
//!
//! A message the channel refuses is that message's failure, not the
//! dispatcher's: it records the attempt and the channel's answer, the
//! message waits (the [`RetryPolicy`]: doubling waits with jitter) and the
//! dispatcher goes on with the others. At the last attempt the message is
//! dead: kept with its reason, counted (`omnisaga_notifications_dead_total`)
//! and listed for operators, who may queue it again
//! (`POST /v1/admin/messages/{id}/retry`).
//!
//! Ordering: an order's messages go out in the order they were queued as
//! long as the channel takes them. A refused message holds back nothing:
//! while it waits, later messages of the same order and customer (and of
//! everyone else) go out, so it arrives after them, or never if it dies.
//! The order's stream records the messages in the order they were sent.

use std::{
    sync::{Arc, LazyLock},
    time::Duration,
};

use anyhow::Result;
use async_trait::async_trait;
use omnisaga_proto::v1::NotificationSent;
use omnisaga_runtime::{
    aggregate::{Aggregate, ExecuteError, Executor, Loaded},
    event::EventMeta,
    metrics::{self, Counters},
    outbox::{OutboxWaker, Written},
    work::{self, Claimed, Then, Wakes, Worker},
    TraceContext,
};
use rand::Rng;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    channel::{Channel, Message},
    domain::{render, AfterRefusal, Command, Messages, MessagesAggregate, RetryPolicy},
    store::{self, Queued},
};

/// Most messages sent and recorded in one transaction.
const BATCH: i64 = 32;

/// Longest the dispatcher sleeps with nothing to send before looking again.
const IDLE_POLL: Duration = Duration::from_secs(1);

static REFUSED: LazyLock<Counters> = LazyLock::new(|| {
    metrics::counter_vec(
        "omnisaga_notifications_refused_total",
        "Sends the channel refused, per channel; each message is tried again after a wait until it is dead",
        &["channel"],
    )
});

static DEAD: LazyLock<Counters> = LazyLock::new(|| {
    metrics::counter_vec(
        "omnisaga_notifications_dead_total",
        "Messages given up after NOTIFICATION_MAX_ATTEMPTS refused sends, per template",
        &["template"],
    )
});

pub struct Dispatcher {
    pub pool: PgPool,
    pub waker: OutboxWaker,
    pub channel: Arc<dyn Channel>,
    pub notifications_topic: String,
    /// What becomes of a refused message.
    pub retry: RetryPolicy,
    /// How long the channel may take to answer one send; past it the send
    /// counts as refused (`NOTIFICATION_SEND_TIMEOUT_MS`), so a channel
    /// that hangs holds no message back for longer.
    pub send_timeout: Duration,
}

/// What came of sending one message.
enum Sent {
    /// The channel took it; its id and text, to mark it sent.
    Taken(Uuid, String),
    /// The channel refused it; the refusal is recorded.
    Refused,
    /// The channel refused it for the last time; it is dead, of this template.
    Dead(String),
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
    /// by this service's own commits (and operators' retries), which wake
    /// it; with none due it sleeps until the first refused one falls due,
    /// the poll being a fallback.
    async fn claim(&self) -> Result<Claimed<Self::Work>> {
        let mut tx = self.pool.begin().await?;
        let queued = store::lock_queued(&mut tx, BATCH).await?;
        if queued.is_empty() {
            let due = store::next_due(&mut tx).await?;
            tx.rollback().await?;
            return Ok(Claimed::Wait(due.map_or(IDLE_POLL, |d| d.min(IDLE_POLL))));
        }
        Ok(Claimed::Work {
            work: (tx, queued),
            then: Then::LookAgain,
        })
    }

    /// Sends the claimed messages in the order they were queued and records
    /// them, and the refusals, in one transaction. A message the channel
    /// refuses waits for its next attempt (or is dead) and the others go on.
    async fn work(&self, (mut tx, queued): Self::Work) -> Result<()> {
        // Each order's messages are one stream: its version now, once for all.
        let streams: Vec<String> = queued
            .iter()
            .map(|q| MessagesAggregate::stream(&q.order_id.to_string()))
            .collect();
        let mut versions = store::stream_versions(&mut tx, &streams).await?;
        let mut sent: Vec<(Uuid, String)> = Vec::with_capacity(queued.len());
        let mut dead = Vec::new();
        for (msg, stream) in queued.into_iter().zip(streams) {
            let version = versions.entry(stream).or_insert(0);
            match self.send(&mut tx, msg, *version).await? {
                Sent::Taken(id, text) => {
                    *version += 1;
                    sent.push((id, text));
                }
                Sent::Refused => {}
                Sent::Dead(template) => dead.push(template),
            }
        }
        let any_sent = !sent.is_empty();
        if any_sent {
            let (ids, texts): (Vec<Uuid>, Vec<String>) = sent.into_iter().unzip();
            store::mark_sent(&mut tx, &ids, &texts, self.channel.name()).await?;
        }
        tx.commit().await?;
        for template in dead {
            DEAD.with_label_values(&[template.as_str()]).inc();
        }
        if any_sent {
            // The dispatcher looks for the next batch itself.
            self.waker.wake_for(Written::OUTBOX);
        }
        Ok(())
    }
}

impl Dispatcher {
    /// Sends one queued message and records it as the next event of its
    /// stream, with its outbox row, in `tx`, or records the channel's
    /// refusal; its span continues the trace of the event that queued it.
    /// An error is the database's, after which the transaction is lost (the
    /// messages sent in it go out again later, under the same notification
    /// ids the channel dedupes on).
    async fn send(&self, tx: &mut PgConnection, queued: Queued, version: i64) -> Result<Sent> {
        let Queued {
            notification_id: id,
            order_id,
            template,
            source_event_id: source,
            correlation_id,
            trace: parent,
            customer_id,
            order_number,
            attempts,
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
                order_id,
                customer_id,
                template: template.clone(),
                text: text.clone(),
            };
            let answer = match tokio::time::timeout(self.send_timeout, self.channel.send(&msg)).await {
                Ok(answer) => answer,
                Err(_) => Err(anyhow::anyhow!(
                    "the channel did not answer within {} ms",
                    self.send_timeout.as_millis()
                )),
            };
            if let Err(refused) = answer {
                return self.refused(tx, id, template, attempts + 1, &refused).await;
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
            Ok(Sent::Taken(id, text))
        }
        .instrument(span)
        .await
    }

    /// Records that the channel refused message `id` at its `attempt`-th
    /// send: it waits for the next, or it is dead.
    async fn refused(
        &self,
        tx: &mut PgConnection,
        id: Uuid,
        template: String,
        attempt: u32,
        refused: &anyhow::Error,
    ) -> Result<Sent> {
        REFUSED.with_label_values(&[self.channel.name()]).inc();
        let error = format!("{refused:#}");
        let jitter: f64 = rand::rng().random();
        match self.retry.after_refusal(attempt, jitter) {
            AfterRefusal::RetryIn(wait) => {
                store::retry_later(tx, id, attempt, &error, wait).await?;
                tracing::warn!(
                    error = %error,
                    attempt,
                    retry_in_ms = wait.as_millis() as u64,
                    "the channel refused the message, it is tried again later"
                );
                Ok(Sent::Refused)
            }
            AfterRefusal::Dead => {
                store::mark_dead(tx, id, attempt, &error).await?;
                tracing::error!(
                    error = %error,
                    attempt,
                    "the channel refused the message for the last time: it is dead until an operator retries it"
                );
                Ok(Sent::Dead(template))
            }
        }
    }
}
