//! Sends queued messages once the recipient is known (an order's payment
//! news may arrive before its `OrderPlaced`), in the order they were queued,
//! and records each as a `NotificationSent` event of the order's
//! notification stream through the runtime's executor, published by the
//! outbox (the use cases of `crate::application` record each outcome). It
//! is the runtime's durable-work loop (`work::run`) over the queue.
//!
//! Claims, not locks: a dispatcher claims the messages it sends
//! (`notifications.claimed_until`, a lease committed before any send), so
//! several instances share the queue and none holds a transaction while
//! the channel answers. Each claimed message is sent (bounded by
//! `NOTIFICATION_SEND_TIMEOUT_MS`) and then recorded, sent or refused, in a
//! short transaction of its own, which also ends the claim; one message's
//! failure to record loses no other's. A dispatcher that dies between a
//! send and its record leaves the claim to run out: the message is sent
//! once more, under the same notification id (the webhook's `webhook-id`),
//! which a receiver dedupes on.
//!
//! Ordering: only the oldest unsent (`QUEUED`) message of an order can be
//! claimed, so an order's messages reach the channel one at a time, in the
//! order they were queued, however many dispatchers run. A refused message
//! holds back the later messages of its order (not those of other orders)
//! while it waits for its next attempt; once it is dead they go on. A
//! message that went stale while it waited (a "payment delayed" notice
//! once the payment is confirmed: `Template::superseded_by`) is left
//! `STALE`, not sent.
//!
//! A message the channel refuses is that message's failure, not the
//! dispatcher's: it records the attempt and the channel's answer, the
//! message waits (the [`RetryPolicy`]: doubling waits with jitter) and the
//! dispatcher goes on with the others. At the last attempt the message is
//! dead: kept with its reason, counted (`omnisaga_notifications_dead_total`)
//! and listed for operators, who may queue it again
//! (`POST /v1/admin/messages/{id}/retry`).

use std::{
    sync::{Arc, LazyLock},
    time::Duration,
};

use anyhow::Result;
use async_trait::async_trait;
use omnisaga_runtime::{
    failpoint,
    hand_back::HandBack,
    metrics::{self, Counters},
    work::{self, Claimed, Then, Wakes, Worker},
    work::{OutboxWaker, Written},
};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    application::{self, Delivery},
    channel::{Channel, Message},
    domain::{render, AfterRefusal, RetryPolicy},
    store::{self, Queued},
};

/// Most messages claimed at once (at most one per order), sent side by side.
const BATCH: i64 = 16;

/// How much longer than the send timeout a claim lasts: the time to record
/// the answer. A claim that runs out (its dispatcher died) is taken again.
const CLAIM_MARGIN: Duration = Duration::from_secs(30);

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

#[derive(Clone)]
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
    /// The channel took it and it is recorded (or was already).
    Taken,
    /// It went stale while it waited and is not sent.
    Stale,
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
    /// The messages claimed, each the oldest unsent one of its order.
    type Work = Vec<Queued>;

    fn name(&self) -> &'static str {
        "dispatcher"
    }

    /// Claims up to [`BATCH`] sendable messages, oldest first, one per
    /// order, in one statement committed at once. Messages are queued by
    /// this service's own commits (and operators' retries), which wake it;
    /// with none due it sleeps until the first refused one falls due (the
    /// same statement says when), the poll being a fallback. After sending
    /// it looks again only when the claim may have left some: a full batch,
    /// or a message queued behind one it sends (a refusal looks too, see
    /// [`Worker::work`]).
    async fn claim(&self) -> Result<Claimed<Self::Work>> {
        let look = store::claim_queued(&self.pool, BATCH, self.send_timeout + CLAIM_MARGIN).await?;
        let wait = look.next_due.map_or(IDLE_POLL, |d| d.min(IDLE_POLL));
        if look.queued.is_empty() {
            return Ok(Claimed::Wait(wait));
        }
        let then = if look.queued.len() as i64 >= BATCH || look.held_back {
            Then::LookAgain
        } else {
            Then::Wait(wait)
        };
        Ok(Claimed::Work {
            work: look.queued,
            then,
        })
    }

    /// Sends the claimed messages side by side (each of another order) and
    /// records each answer in a transaction of its own. A message the
    /// channel refuses waits for its next attempt (or is dead) and the
    /// others go on; one whose record failed stays claimed until the claim
    /// runs out.
    async fn work(&self, queued: Self::Work) -> Result<()> {
        // Stopped in the middle of the sends, it gives their claims up at
        // once: sent again, a message keeps the id the channel dedupes on.
        let (pool, ids) = (
            self.pool.clone(),
            queued.iter().map(|q| q.notification_id).collect::<Vec<_>>(),
        );
        let claims = HandBack::new(move || {
            Box::pin(async move {
                match store::release_claims(&pool, &ids).await {
                    Ok(n) => tracing::info!(messages = n, "claims handed back at shutdown"),
                    Err(e) => {
                        tracing::warn!(error = %e, "claims kept: the messages go out when they run out")
                    }
                }
            })
        });
        let results = futures::future::join_all(queued.into_iter().map(|q| self.send(q))).await;
        claims.keep();
        let mut any_done = false;
        let mut failed = None;
        for result in results {
            match result {
                Ok(Sent::Taken | Sent::Stale) => any_done = true,
                // It falls due again later: a look says when (this
                // dispatcher's next, or an idle one's).
                Ok(Sent::Refused) => self.waker.pass_on(),
                Ok(Sent::Dead(template)) => DEAD.with_label_values(&[template.as_str()]).inc(),
                Err(e) => failed = Some(e),
            }
        }
        if any_done {
            // The dispatcher looks for the next messages itself.
            self.waker.wake_for(Written::OUTBOX);
        }
        failed.map_or(Ok(()), Err)
    }
}

impl Dispatcher {
    /// Sends one claimed message, then records it as the next event of its
    /// stream, with its outbox row, or records the channel's refusal, in a
    /// transaction of its own; its span continues the trace of the event
    /// that queued it. An error is the database's: the message stays
    /// claimed and goes out again, under the same notification id the
    /// channel dedupes on, once the claim runs out.
    async fn send(&self, queued: Queued) -> Result<Sent> {
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
            stale,
        } = queued;
        if stale {
            let mut conn = self.pool.acquire().await?;
            application::leave_stale(&mut conn, id).await?;
            tracing::info!(%order_id, %template, "not sent: a later message made it stale");
            return Ok(Sent::Stale);
        }
        let span = tracing::info_span!(
            "notify",
            otel.name = %format!("send {template}"),
            order.id = %order_id,
            notification.id = %id,
            request.id = %correlation_id,
            omnisaga.db.statement_count = tracing::field::Empty,
        );
        parent.attach(&span);
        let send = async move {
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
            if answer.is_ok() {
                failpoint::hit(failpoint::MESSAGE_SENT);
            }
            let mut tx = self.pool.begin().await?;
            if let Err(refused) = answer {
                let sent = self
                    .refused(&mut tx, id, template, attempts + 1, &refused)
                    .await?;
                tx.commit().await?;
                return Ok(sent);
            }
            let delivery = Delivery {
                notification_id: id,
                order_id,
                template,
                text,
                source_event_id: source,
                correlation_id,
            };
            let topic = &self.notifications_topic;
            if !application::record_sent(&mut tx, topic, self.channel.name(), delivery).await? {
                // Its claim ran out and another dispatcher recorded it.
                tx.rollback().await?;
                return Ok(Sent::Taken);
            }
            tx.commit().await?;
            Ok(Sent::Taken)
        };
        omnisaga_runtime::db::counted(&span, send)
            .instrument(span.clone())
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
        Ok(
            match application::record_refused(tx, &self.retry, id, attempt, &error).await? {
                AfterRefusal::RetryIn(_) => Sent::Refused,
                AfterRefusal::Dead => Sent::Dead(template),
            },
        )
    }
}
