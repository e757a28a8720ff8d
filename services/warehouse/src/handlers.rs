//! Reacts to the order and payment topics: reserve on `OrderPlaced`, release
//! the pick task on `PaymentAuthorized`.

use async_trait::async_trait;
use chrono::Utc;
use omnisaga_proto::v1::{envelope::Payload, OrderPlaced};
use omnisaga_runtime::{
    consumer::{Handler, HandlerError, Incoming},
    event::{self, EventMeta},
    outbox,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{self, Command, FulfilmentError},
    store::{self, TaskContext},
};

pub struct SagaEvents {
    pub warehouse_topic: String,
}

fn order_uuid(id: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(id).map_err(|_| HandlerError::Rejected(anyhow::anyhow!("order id {id:?} is not a UUID")))
}

#[async_trait]
impl Handler for SagaEvents {
    async fn handle(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        match &event.envelope.payload {
            Some(Payload::OrderPlaced(placed)) => self.reserve(tx, event, placed).await,
            Some(Payload::PaymentAuthorized(_)) => self.paid(tx, event).await,
            Some(Payload::OrderCancelled(_)) => self.cancelled(tx, event).await,
            _ => Ok(()),
        }
    }
}

impl SagaEvents {
    async fn reserve(
        &self,
        tx: &mut PgConnection,
        event: &Incoming,
        placed: &OrderPlaced,
    ) -> Result<(), HandlerError> {
        let order_id = order_uuid(&placed.order_id)?;
        if placed.items.is_empty() || placed.items.iter().any(|i| i.quantity == 0 || i.sku.is_empty()) {
            return Err(HandlerError::Rejected(anyhow::anyhow!(
                "OrderPlaced has no items or an empty line"
            )));
        }
        let (state, version) = store::load(tx, &placed.order_id).await?;
        let short = store::shortfalls(tx, &placed.items).await?;
        let pick_task_id = Uuid::now_v7();
        let cmd = Command::Reserve {
            order_id: placed.order_id.clone(),
            items: placed.items.clone(),
            short: short.clone(),
            pick_task_id: pick_task_id.to_string(),
        };
        let events = match domain::decide(&state, cmd) {
            Ok(events) => events,
            Err(FulfilmentError::AlreadyReserved) => return Ok(()),
        };
        let meta = EventMeta::caused_by(&event.envelope);
        let now = Utc::now();
        let envelopes: Vec<_> = events
            .into_iter()
            .map(|e| event::envelope("warehouse", &placed.order_id, e, &meta, now))
            .collect();
        store::append(tx, &placed.order_id, version, &envelopes).await?;
        for env in &envelopes {
            outbox::enqueue(tx, &self.warehouse_topic, env, &meta.trace).await?;
        }
        if short.is_empty() {
            store::reserve(tx, &placed.items).await?;
            let ctx = TaskContext {
                correlation_id: meta.correlation_id.clone(),
                causation_id: envelopes.last().map(|e| e.event_id.clone()).unwrap_or_default(),
                traceparent: meta.trace.traceparent.clone(),
                tracestate: meta.trace.tracestate.clone(),
            };
            store::create_task(tx, pick_task_id, order_id, &placed.items, state.paid, &ctx).await?;
            tracing::info!(pick_task.id = %pick_task_id, "item needs to be picked");
        } else {
            tracing::info!(skus = ?short, "stock unavailable");
        }
        Ok(())
    }

    /// Releases what a cancelled order holds and takes its task off the queue.
    async fn cancelled(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        let env = &event.envelope;
        let order_id = order_uuid(&env.order_id)?;
        // The task row first: pickers lock it before stock, so this order never deadlocks.
        store::cancel_task(tx, order_id).await?;
        let (state, version) = store::load(tx, &env.order_id).await?;
        if state.cancelled {
            return Ok(());
        }
        let after = env
            .payload
            .as_ref()
            .map(|p| domain::evolve(state.clone(), p))
            .unwrap_or(state);
        let releases = domain::release_on_cancel(&after, &env.order_id);
        let meta = EventMeta::caused_by(env);
        let now = Utc::now();
        let envelopes: Vec<_> = releases
            .into_iter()
            .map(|e| event::envelope("warehouse", &env.order_id, e, &meta, now))
            .collect();
        let all: Vec<_> = std::iter::once(env.clone())
            .chain(envelopes.iter().cloned())
            .collect();
        store::append(tx, &env.order_id, version, &all).await?;
        for out in &envelopes {
            if let Some(Payload::StockReleased(r)) = &out.payload {
                store::release(tx, &r.items).await?;
            }
            outbox::enqueue(tx, &self.warehouse_topic, out, &meta.trace).await?;
            tracing::info!(event.type = %out.event_type, "reservation released");
        }
        Ok(())
    }

    async fn paid(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        let env = &event.envelope;
        let order_id = order_uuid(&env.order_id)?;
        let (state, version) = store::load(tx, &env.order_id).await?;
        if state.paid {
            return Ok(());
        }
        store::append(tx, &env.order_id, version, std::slice::from_ref(env)).await?;
        let meta = EventMeta::caused_by(env);
        let ctx = TaskContext {
            correlation_id: meta.correlation_id,
            causation_id: meta.causation_id,
            traceparent: meta.trace.traceparent,
            tracestate: meta.trace.tracestate,
        };
        store::release_task(tx, order_id, &ctx).await?;
        Ok(())
    }
}
