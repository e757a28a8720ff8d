//! The warehouse's use cases on the saga's events, one function each: what
//! the consumer (`crate::handlers`) calls. Each is one shape: the order's
//! task row locked first (the pickers lock it before the stock rows and the
//! stream), then the runtime's aggregate executor in the caller's
//! transaction (load, decide, append with the outbox), then the stock and
//! pick-queue rows the events imply. A refused command changes nothing: it
//! is a duplicate or a fact that comes too late (a payment for a cancelled
//! order picks nothing). The pickers' steps are `crate::workers`'s, stock
//! received is `crate::import`'s.

use omnisaga_proto::v1::{Envelope, OrderCancelled, OrderPlaced, PaymentAuthorized};
use omnisaga_runtime::{
    aggregate::{ExecuteError, Executor},
    consumer::HandlerError,
    event::{occurred_at, EventMeta},
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{Command, Event, Fulfilment, FulfilmentAggregate},
    store::{self, TaskContext},
};

/// A placed order: its stock reserved, or what is short, and its pick task.
pub async fn reserve(
    tx: &mut PgConnection,
    topic: &str,
    order_id: Uuid,
    cause: &Envelope,
    placed: &OrderPlaced,
) -> Result<(), HandlerError> {
    store::lock_task(tx, order_id).await?;
    let cmd = reservation(tx, placed).await?;
    execute(tx, topic, order_id, cause, cmd).await
}

/// A paid order: its pick task released to the pickers.
pub async fn release_for_picking(
    tx: &mut PgConnection,
    topic: &str,
    order_id: Uuid,
    cause: &Envelope,
    paid: &PaymentAuthorized,
) -> Result<(), HandlerError> {
    store::lock_task(tx, order_id).await?;
    execute(
        tx,
        topic,
        order_id,
        cause,
        Command::ReleaseForPicking(paid.clone()),
    )
    .await
}

/// A cancelled order: its task off the queue, its stock released.
pub async fn cancel(
    tx: &mut PgConnection,
    topic: &str,
    order_id: Uuid,
    cause: &Envelope,
    cancelled: &OrderCancelled,
) -> Result<(), HandlerError> {
    store::lock_task(tx, order_id).await?;
    execute(tx, topic, order_id, cause, Command::Cancel(cancelled.clone())).await
}

/// Decides `cmd`, caused by `env`, and records the decision with the
/// stock and queue rows it implies.
async fn execute(
    tx: &mut PgConnection,
    topic: &str,
    order_id: Uuid,
    env: &Envelope,
    cmd: Command,
) -> Result<(), HandlerError> {
    let meta = EventMeta::caused_by(env);
    let executor = Executor::<FulfilmentAggregate>::new(topic);
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

/// The reservation a placed order asks for, with the SKUs stock cannot cover.
async fn reservation(tx: &mut PgConnection, placed: &OrderPlaced) -> Result<Command, HandlerError> {
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
            let created_at = occurred_at(out);
            store::create_task(
                tx,
                pick_task_id,
                order_id,
                &t.items,
                after.pickable(),
                &ctx,
                created_at,
            )
            .await?;
            tracing::info!(pick_task.id = %pick_task_id, "item needs to be picked");
        }
        Event::StockUnavailable(u) => tracing::info!(skus = ?u.skus, "stock unavailable"),
        Event::PaymentAuthorized(_) if after.pickable() => {
            store::release_task(tx, order_id, &ctx, occurred_at(out)).await?;
        }
        Event::OrderCancelled(_) => store::cancel_task(tx, order_id, occurred_at(out)).await?,
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
