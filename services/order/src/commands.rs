//! Running a command against one order: begin, load, decide, append (plus
//! outbox rows and the view), commit. Shared by the API, the deadline
//! scheduler and the consumer (which brings its own transaction).

use std::time::Duration;

use chrono::Utc;
use omnisaga_proto::v1::Envelope;
use omnisaga_runtime::{
    event::{self, EventMeta},
    outbox::OutboxWaker,
    store::{self, StoreError},
    TraceContext,
};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{self, Command, Order, OrderError};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] OrderError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CommandError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
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
    pub events: Vec<Envelope>,
}

pub fn fold(history: &[store::StoredEvent]) -> Option<Order> {
    history
        .iter()
        .filter_map(|e| e.envelope.payload.as_ref())
        .fold(None, domain::evolve)
}

pub fn stream(order_id: Uuid) -> String {
    format!("order-{order_id}")
}

impl Orders {
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

    /// Runs `cmd` inside `tx`. For `Command::Record`, `recorded` is the
    /// envelope of the fact, stored as it is before the reaction.
    pub async fn execute_in(
        &self,
        tx: &mut PgConnection,
        order_id: Uuid,
        cmd: Command,
        meta: Option<EventMeta>,
        recorded: Option<&Envelope>,
    ) -> Result<Outcome, CommandError> {
        let history = store::load(tx, &stream(order_id)).await?;
        let version = history.last().map_or(0, |e| e.version);
        let state = fold(&history);
        let before = state.as_ref().map(|o| o.status);
        let new = domain::decide(state.as_ref(), cmd)?;
        let mut order = state;
        if let Some(p) = recorded.and_then(|fact| fact.payload.as_ref()) {
            order = domain::evolve(order, p);
        }
        let meta = match meta {
            Some(m) => m,
            None => own_meta(&history),
        };
        let now = Utc::now();
        let envelopes: Vec<Envelope> = new
            .into_iter()
            .map(|p| event::envelope("order", &order_id.to_string(), p, &meta, now))
            .collect();
        // The fact recorded and the order's own events, in one statement;
        // only the order's own go to the outbox.
        let all: Vec<Envelope> = recorded
            .into_iter()
            .cloned()
            .chain(envelopes.iter().cloned())
            .collect();
        let fact = recorded.map(|f| f.event_id.as_str());
        let own = |e: &Envelope| Some(e.event_id.as_str()) != fact;
        store::append_publishing(
            tx,
            &stream(order_id),
            version,
            &all,
            own,
            &self.topic,
            &meta.trace,
        )
        .await?;
        for env in &envelopes {
            order = order.and_then(|o| {
                env.payload
                    .as_ref()
                    .map(|p| domain::evolve(Some(o.clone()), p))
                    .unwrap_or(Some(o))
            });
        }
        let order = order.ok_or(OrderError::UnknownOrder)?;
        if Some(order.status) != before || order.delay_noticed {
            sync_view(tx, order_id, &order, self.payment_deadline).await?;
        }
        Ok(Outcome {
            order,
            events: envelopes,
        })
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

async fn sync_view(
    tx: &mut PgConnection,
    order_id: Uuid,
    order: &Order,
    deadline: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE order_view SET status = $2, updated_at = now(), delay_noticed = $3,
                payment_deadline_at = CASE WHEN $2 = 'AWAITING_PAYMENT'
                    THEN coalesce(payment_deadline_at, now() + $4 * interval '1 millisecond')
                    ELSE payment_deadline_at END
         WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(order.status.as_str())
    .bind(order.delay_noticed)
    .bind(deadline.as_millis() as f64)
    .execute(tx)
    .await?;
    Ok(())
}
