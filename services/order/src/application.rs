//! The order's use cases: a command run against one order through the
//! runtime's aggregate executor (load, decide, append with the outbox rows),
//! keeping the order view in step. Shared by the API, the deadline checker
//! and the consumer (which brings its own transaction).

use std::time::Duration;

use chrono::{DateTime, Utc};

use omnisaga_proto::v1::Envelope;
use omnisaga_runtime::{
    aggregate::{ExecuteError, Executor, Loaded},
    event::EventMeta,
    store::{self, StoreError},
    work::OutboxWaker,
    TraceContext,
};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{Command, Order, OrderAggregate, OrderError};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] OrderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A fact was recorded without the envelope it came in (a bug).
    #[error("a fact of another service was decided without the envelope it came in")]
    FactWithoutCause,
}

impl From<sqlx::Error> for CommandError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

impl From<ExecuteError<OrderError>> for CommandError {
    fn from(e: ExecuteError<OrderError>) -> Self {
        match e {
            ExecuteError::Refused(e) => Self::Domain(e),
            ExecuteError::Store(e) => Self::Store(e),
            ExecuteError::FactWithoutCause => Self::FactWithoutCause,
        }
    }
}

/// Where the order's outbox rows go and how its view is kept.
#[derive(Clone)]
pub struct Orders {
    pub pool: PgPool,
    pub waker: OutboxWaker,
    pub topic: String,
    /// How long an order may wait for a successful payment after a failed one.
    pub payment_deadline: Duration,
}

/// An order's state after a command, with the events it produced.
pub struct Outcome {
    pub order: Order,
    /// The order's own events, published.
    pub events: Vec<Envelope>,
}

impl Orders {
    /// The runtime's aggregate executor for orders, publishing on the orders topic.
    pub fn executor(&self) -> Executor<OrderAggregate> {
        Executor::new(&self.topic)
    }

    /// Runs `cmd` in its own transaction, retrying when a concurrent writer
    /// moved the stream on. `meta` is `None` to continue the order's own trace.
    pub async fn execute(
        &self,
        order_id: Uuid,
        cmd: Command,
        meta: Option<EventMeta>,
    ) -> Result<Outcome, CommandError> {
        let mut attempt = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            match self
                .execute_in(&mut tx, order_id, cmd.clone(), meta.clone(), None)
                .await
            {
                Ok(outcome) => {
                    tx.commit().await?;
                    if !outcome.events.is_empty() {
                        self.waker.wake();
                    }
                    return Ok(outcome);
                }
                Err(CommandError::Store(StoreError::Conflict { .. })) if attempt < 5 => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs `cmd` inside `tx` through the executor, and keeps the order view
    /// in step. For `Command::Record`, `cause` is the envelope of the fact,
    /// stored as it came.
    pub async fn execute_in(
        &self,
        tx: &mut PgConnection,
        order_id: Uuid,
        cmd: Command,
        meta: Option<EventMeta>,
        cause: Option<&Envelope>,
    ) -> Result<Outcome, CommandError> {
        let executor = self.executor();
        let key = order_id.to_string();
        let loaded = executor.load(tx, &key).await?;
        let before = loaded.state.clone();
        let meta = match meta {
            Some(m) => m,
            None => own_meta(&loaded.history),
        };
        let done = executor.decide(tx, &key, loaded, cmd, cause, &meta).await?;
        // What the new events change in the view, judged event by event as
        // a rebuild of the view judges them (crate::projection).
        let at = done.appended.iter().map(omnisaga_runtime::event::occurred_at);
        let (_, times) = crate::projection::view_times(before, done.events.iter().zip(at));
        let order = done.state.ok_or(OrderError::UnknownOrder)?;
        if let Some(updated_at) = times.updated_at {
            crate::store::sync_view(
                tx,
                order_id,
                crate::store::ViewUpdate {
                    status: order.status.as_str(),
                    delay_noticed: order.delay_noticed,
                    escalated: order.escalated.map(|s| s.as_str()),
                    updated_at,
                    payment_deadline_at: times.awaiting_since.map(|at| at + self.payment_deadline()),
                    escalated_at: times.escalated_at,
                },
            )
            .await?;
        }
        Ok(Outcome {
            order,
            events: done.published,
        })
    }

    /// How long an order may wait for a successful payment after a failed
    /// one, as the view's deadline adds it.
    fn payment_deadline(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.payment_deadline).unwrap_or(chrono::Duration::MAX)
    }

    /// Places a new order (`cmd` is a [`Command::Place`] with a fresh id) in
    /// `tx`, without looking for a stream that cannot exist yet. Returns
    /// the order and when it was placed (its event's time, the view's).
    pub async fn place_in(
        &self,
        tx: &mut PgConnection,
        order_id: Uuid,
        cmd: Command,
        meta: &EventMeta,
    ) -> Result<(Order, DateTime<Utc>), CommandError> {
        let done = self
            .executor()
            .decide(tx, &order_id.to_string(), Loaded::new_stream(), cmd, None, meta)
            .await?;
        let at = done
            .appended
            .first()
            .map(omnisaga_runtime::event::occurred_at)
            .unwrap_or_default();
        Ok((done.state.ok_or(OrderError::UnknownOrder)?, at))
    }

    /// The order and its whole stream (its timeline), if it exists.
    pub async fn load(
        &self,
        conn: &mut PgConnection,
        order_id: Uuid,
    ) -> Result<Option<(Order, Vec<store::StoredEvent>)>, StoreError> {
        let loaded = self.executor().load(conn, &order_id.to_string()).await?;
        Ok(loaded.state.map(|order| (order, loaded.history)))
    }
}

/// Metadata for events the order service causes by itself (deadlines): the
/// saga's correlation id, caused by the stream's last event, in the current span.
fn own_meta(history: &[store::StoredEvent]) -> EventMeta {
    EventMeta {
        correlation_id: history
            .first()
            .map(|e| e.envelope.correlation_id.clone())
            .unwrap_or_default(),
        causation_id: history
            .last()
            .map(|e| e.envelope.event_id.clone())
            .unwrap_or_default(),
        trace: TraceContext::current(),
    }
}
