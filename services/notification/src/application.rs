//! Notification's use cases, one function each: what the consumer
//! (`crate::handlers`), the dispatcher (`crate::workers`) and the
//! operators' API (`crate::api`) call. On the saga's events: who receives
//! an order's messages ([`record_recipient`], on `OrderPlaced`) and the
//! message an event tells the customer, queued ([`tell`]). On a send's
//! outcome: a message the channel took, recorded as a `NotificationSent`
//! event of the order's stream ([`record_sent`]), one it refused waiting
//! for its next attempt or dead ([`record_refused`]), one gone stale left
//! unsent ([`leave_stale`]). On an operator's word: a dead message queued
//! again ([`retry_dead`]).
//! Each works in the caller's transaction (the consumer's, or the one the
//! dispatcher opens for each answer), but for the operator's retry, one
//! statement of its own. What is told comes from [`crate::domain`], the
//! rows from [`crate::store`].

use anyhow::Result;
use omnisaga_proto::v1::{Envelope, NotificationSent, OrderPlaced};
use omnisaga_runtime::{
    aggregate::{Aggregate, ExecuteError, Executor, Loaded},
    consumer::HandlerError,
    event::{event_id, EventMeta},
    work::{self, OutboxWaker, Written},
    TraceContext,
};
use rand::Rng;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    domain::{recipient_of, AfterRefusal, Command, Messages, MessagesAggregate, RetryPolicy, Template},
    store::{self, Attempted, NewMessage},
};

/// A placed order: who receives its messages (the first record stands).
pub async fn record_recipient(
    tx: &mut PgConnection,
    order_id: Uuid,
    placed: &OrderPlaced,
) -> Result<(), HandlerError> {
    store::add_recipient(tx, order_id, recipient_of(placed), &placed.order_number).await?;
    Ok(())
}

/// What the event `env` tells the customer (`template`): its message
/// queued, once per event, unless a message already queued made it stale
/// (see [`Template::superseded_by`]).
pub async fn tell(
    tx: &mut PgConnection,
    order_id: Uuid,
    env: &Envelope,
    template: Template,
) -> Result<(), HandlerError> {
    let superseded_by = template.superseded_by();
    if !superseded_by.is_empty() && store::told_any(tx, order_id, superseded_by).await? {
        tracing::debug!(
            template = template.name(),
            "not queued: a message already queued made it stale"
        );
        return Ok(());
    }
    // The message's span will be a child of this consumer's span.
    let trace = TraceContext::current();
    let msg = NewMessage {
        notification_id: Uuid::now_v7(),
        order_id,
        source_event_id: event_id(env).unwrap_or_default(),
        source_event_type: &env.event_type,
        template,
        correlation_id: &env.correlation_id,
        trace: &trace,
    };
    store::queue(tx, &msg).await?;
    work::note_work();
    Ok(())
}

/// A message the channel took.
pub struct Delivery {
    pub notification_id: Uuid,
    pub order_id: Uuid,
    pub template: String,
    /// The text as sent.
    pub text: String,
    /// The event that queued it.
    pub source_event_id: Uuid,
    pub correlation_id: String,
}

/// The message `delivery` tells of, sent through `channel`: marked sent
/// (its claim ended) and recorded as the next `NotificationSent` event of
/// its order's stream, occurred when it was marked sent, with its outbox
/// row on `topic`. False when it was no
/// longer queued (its claim ran out and another dispatcher recorded it):
/// nothing is recorded, the caller rolls back.
pub async fn record_sent(
    tx: &mut PgConnection,
    topic: &str,
    channel: &str,
    delivery: Delivery,
) -> Result<bool> {
    let Delivery {
        notification_id: id,
        order_id,
        template,
        text,
        source_event_id: source,
        correlation_id,
    } = delivery;
    let stream = MessagesAggregate::stream(&order_id.to_string());
    let Some((version, sent_at)) = store::mark_sent(tx, id, &text, channel, &stream).await? else {
        return Ok(false);
    };

    let meta = EventMeta {
        correlation_id,
        causation_id: source.to_string(),
        trace: TraceContext::current(),
    };
    let order = order_id.to_string();
    let sent = NotificationSent {
        order_id: order.clone(),
        notification_id: id.to_string(),
        channel: channel.to_owned(),
        template,
        text,
        source_event_id: source.to_string(),
    };
    // Decided over the stream's version: the aggregate has no rule
    // that needs the events themselves.
    let loaded = Loaded {
        state: Messages::default(),
        version,
        history: Vec::new(),
    };
    // The event occurred when the row says it was sent: the message a
    // rebuild makes of it has the row's `sent_at` (`crate::projection`).
    let executor = Executor::<MessagesAggregate>::new(topic).at(sent_at);
    match executor
        .decide(tx, &order, loaded, Command::RecordSent(sent), None, &meta)
        .await
    {
        Ok(_) => Ok(true),
        Err(ExecuteError::Store(e)) => Err(e.into()),
        Err(e) => anyhow::bail!("message not recorded: {e}"),
    }
}

/// Message `id`, refused by the channel at its `attempt`-th send with
/// `error`: by the `retry` policy it waits for the next, or it is dead.
pub async fn record_refused(
    tx: &mut PgConnection,
    retry: &RetryPolicy,
    id: Uuid,
    attempt: u32,
    error: &str,
) -> Result<AfterRefusal, sqlx::Error> {
    let jitter: f64 = rand::rng().random();
    let after = retry.after_refusal(attempt, jitter);
    match after {
        AfterRefusal::RetryIn(wait) => {
            store::retry_later(tx, id, attempt, error, wait).await?;
            tracing::warn!(
                error = %error,
                attempt,
                retry_in_ms = wait.as_millis() as u64,
                "the channel refused the message, it is tried again later"
            );
        }
        AfterRefusal::Dead => {
            store::mark_dead(tx, id, attempt, error).await?;
            tracing::error!(
                error = %error,
                attempt,
                "the channel refused the message for the last time: it is dead until an operator retries it"
            );
        }
    }
    Ok(after)
}

/// Message `id`, gone stale while it waited (a later message made it so):
/// left unsent for good.
pub async fn leave_stale(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    store::mark_stale(conn, id).await
}

/// What came of an operator's retry of a message.
pub enum Retried {
    /// It was dead and is queued again; the dispatcher is woken.
    Queued(Attempted),
    /// It is not dead: its status.
    NotDead(String),
    /// There is no such message.
    Unknown,
}

/// An operator's retry of dead message `id`: queued again as if new (no
/// attempts, due at once), and the dispatcher woken through `waker`.
pub async fn retry_dead(pool: &PgPool, waker: &OutboxWaker, id: Uuid) -> Result<Retried, sqlx::Error> {
    match store::retry_dead(pool, id).await? {
        Some(queued) => {
            waker.wake_for(Written {
                outbox: false,
                work: true,
            });
            tracing::info!(notification.id = %id, "dead message queued again by an operator");
            Ok(Retried::Queued(queued))
        }
        None => Ok(match store::status_of(pool, id).await? {
            None => Retried::Unknown,
            Some(status) => Retried::NotDead(status),
        }),
    }
}
