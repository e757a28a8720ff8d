//! Reacts to the order and payment topics: reserve on `OrderPlaced`, release
//! the pick task on `PaymentAuthorized`, release stock on `OrderCancelled`.
//! Each is one shape: the runtime's aggregate executor in the consumer's
//! transaction (load, decide, append with the outbox), then the stock and
//! pick-queue rows the events imply. A refused command changes nothing: it is a duplicate or a fact
//! that comes too late (a payment for a cancelled order picks nothing).

use std::sync::LazyLock;

use async_trait::async_trait;
use omnisaga_proto::v1::{envelope::Payload, Envelope, OrderPlaced};
use omnisaga_runtime::{
    aggregate::{ExecuteError, Executor},
    consumer::{Handler, HandlerError, Incoming, Wanted},
    event::EventMeta,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{Command, Event, Fulfilment, FulfilmentAggregate},
    store::{self, TaskContext},
};

/// True when the warehouse's consumer acts on `payload`: a placement
/// (reserve), a payment (release for picking), a cancellation (release stock).
pub fn reacts_to(payload: &Payload) -> bool {
    matches!(
        payload,
        Payload::OrderPlaced(_) | Payload::PaymentAuthorized(_) | Payload::OrderCancelled(_)
    )
}

/// The event types [`reacts_to`] takes: a record of any other is passed
/// over before a transaction.
static WANTED: LazyLock<Wanted> = LazyLock::new(|| Wanted::reacted_to(reacts_to));

pub struct SagaEvents {
    pub warehouse_topic: String,
}

#[async_trait]
impl Handler for SagaEvents {
    fn wants(&self, event_type: &str) -> bool {
        WANTED.wants(event_type)
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        let env = &event.envelope;
        let Some(payload) = env.payload.as_ref().filter(|p| reacts_to(p)) else {
            return Ok(());
        };
        let order_id = event.order_id()?;
        // The task row first, as the pickers lock it before the stock rows and the stream.
        store::lock_task(tx, order_id).await?;
        let cmd = match payload {
            Payload::OrderPlaced(placed) => reserve(tx, placed).await?,
            Payload::PaymentAuthorized(paid) => Command::ReleaseForPicking(paid.clone()),
            Payload::OrderCancelled(cancelled) => Command::Cancel(cancelled.clone()),
            _ => return Ok(()),
        };
        self.execute(tx, order_id, env, cmd).await
    }
}

impl SagaEvents {
    /// Decides `cmd`, caused by `env`, and records the decision with the
    /// stock and queue rows it implies.
    async fn execute(
        &self,
        tx: &mut PgConnection,
        order_id: Uuid,
        env: &Envelope,
        cmd: Command,
    ) -> Result<(), HandlerError> {
        let meta = EventMeta::caused_by(env);
        let executor = Executor::<FulfilmentAggregate>::new(&self.warehouse_topic);
        let done = match executor
            .execute(tx, &order_id.to_string(), cmd, Some(env), &meta)
            .await
        {
            Ok(done) => done,
            Err(ExecuteError::Refused(reason)) => {
                tracing::debug!(%reason, event.type = %env.event_type, "nothing to do");
                return Ok(());
            }
            Err(ExecuteError::Store(e)) => return Err(e.into()),
            Err(e @ ExecuteError::FactWithoutCause) => return Err(HandlerError::Rejected(e.into())),
        };
        for (event, out) in done.events.iter().zip(&done.appended) {
            apply(tx, order_id, event, out, &done.state, &meta).await?;
        }
        Ok(())
    }
}

/// The reservation a placed order asks for, with the SKUs stock cannot cover.
async fn reserve(tx: &mut PgConnection, placed: &OrderPlaced) -> Result<Command, HandlerError> {
    if placed.items.is_empty() || placed.items.iter().any(|i| i.quantity == 0 || i.sku.is_empty()) {
        return Err(HandlerError::Rejected(anyhow::anyhow!(
            "OrderPlaced has no items or an empty line"
        )));
    }
    let short = store::shortfalls(tx, &placed.items).await?;
    Ok(Command::Reserve {
        order_id: placed.order_id.clone(),
        items: placed.items.clone(),
        short,
        pick_task_id: Uuid::now_v7().to_string(),
    })
}

/// Brings stock levels and the pick queue in line with one recorded event
/// (`out`, the envelope it was recorded in).
async fn apply(
    tx: &mut PgConnection,
    order_id: Uuid,
    event: &Event,
    out: &Envelope,
    after: &Fulfilment,
    meta: &EventMeta,
) -> Result<(), HandlerError> {
    let ctx = TaskContext {
        correlation_id: meta.correlation_id.clone(),
        causation_id: out.event_id.clone(),
        traceparent: meta.trace.traceparent.clone(),
        tracestate: meta.trace.tracestate.clone(),
    };
    match event {
        Event::StockReserved(r) => store::reserve(tx, &r.items).await?,
        Event::PickTaskCreated(t) => {
            let pick_task_id = Uuid::parse_str(&t.pick_task_id)
                .map_err(|e| HandlerError::Rejected(anyhow::anyhow!("pick task id: {e}")))?;
            store::create_task(tx, pick_task_id, order_id, &t.items, after.pickable(), &ctx).await?;
            tracing::info!(pick_task.id = %pick_task_id, "item needs to be picked");
        }
        Event::StockUnavailable(u) => tracing::info!(skus = ?u.skus, "stock unavailable"),
        Event::PaymentAuthorized(_) if after.pickable() => {
            store::release_task(tx, order_id, &ctx).await?;
        }
        Event::OrderCancelled(_) => store::cancel_task(tx, order_id).await?,
        Event::StockReleased(r) => {
            store::release(tx, &r.items).await?;
            tracing::info!(event.type = %out.event_type, "reservation released");
        }
        // Paid before the stock was reserved: the task is created workable.
        Event::PaymentAuthorized(_) => {}
        // The pickers' own steps: their queue rows move with them.
        Event::OrderReadyForShipment(_) | Event::OrderShipped(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use omnisaga_runtime::{aggregate::publishes, testing::catalog_drift};

    use crate::domain::FulfilmentAggregate;

    use super::reacts_to;

    #[test]
    fn the_topic_catalog_lists_what_warehouse_publishes_and_acts_on_and_nothing_else() {
        assert_eq!(
            catalog_drift("warehouse", publishes::<FulfilmentAggregate>, reacts_to),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_consumer_passes_over_before_a_transaction_every_type_it_does_not_react_to() {
        use omnisaga_runtime::consumer::Handler;
        let handler = super::SagaEvents {
            warehouse_topic: String::new(),
        };
        for payload in omnisaga_proto::every_payload() {
            let t = payload.event_type();
            assert_eq!(handler.wants(t), reacts_to(&payload), "{t}");
        }
    }
}
