//! The warehouse's read models as projections of its own events, so
//! `omnisaga rebuild warehouse` can make them again from the event store
//! (see docs/rebuild.md): stock levels (`stock`, `shipped`) from the goods
//! received (streams `stock-<sku>`) and the fulfilment streams'
//! reservations, releases and shipments; the pick backlog (`pick_tasks`)
//! from the fulfilment streams. The folds here are pure; their statements
//! are `crate::store`'s.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use omnisaga_proto::v1::{envelope::Payload, Envelope, LineItem, PickTaskCreated};
use omnisaga_runtime::{
    aggregate::Aggregate,
    event::occurred_at,
    projection::{Projection, Recorded, Table},
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{evolve, Event, Fulfilment, FulfilmentAggregate},
    store::{self, TaskItem, TaskStatus},
    wire,
    workers::queue_status,
};

#[cfg(test)]
mod tests;

/// Stock levels: what came in, what is reserved (shipped goods included)
/// and what shipped, per SKU. Every column is the events'.
pub struct StockLevels;

/// The pick backlog: a task per order that reserved stock.
pub struct PickBacklog;

const STOCK: &[Table] = &[
    Table {
        name: "stock",
        key: &["sku"],
        columns: &["sku", "on_hand", "reserved"],
        rows: None,
    },
    Table {
        name: "shipped",
        key: &["sku"],
        columns: &["sku", "quantity"],
        rows: None,
    },
];

/// `due_at` (the queue's schedule and a picker's lease) and the context of
/// the event that made the task workable (`correlation_id`,
/// `causation_id`, `traceparent`, `tracestate`, for the events it causes)
/// are the queue's work state: not the events'.
const PICK_TASKS: &[Table] = &[Table {
    name: "pick_tasks",
    key: &["pick_task_id"],
    columns: &[
        "pick_task_id",
        "order_id",
        "items",
        "status",
        "created_at",
        "updated_at",
    ],
    rows: None,
}];

#[async_trait]
impl Projection for StockLevels {
    fn name(&self) -> &'static str {
        "stock"
    }

    fn tables(&self) -> &'static [Table] {
        STOCK
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[Recorded]) -> anyhow::Result<()> {
        let batch: Vec<&Envelope> = events.iter().map(|r| &r.envelope).collect();
        let shipped = orders(&batch, |e| matches!(e, Event::OrderShipped(_)));
        let mut items = HashMap::new();
        for (order_id, history) in store::load_fulfilments(conn, &shipped).await? {
            let created = fold(&history).map(|f| task_items(&f.created.items));
            items.insert(order_id, created.unwrap_or_default());
        }
        let deltas = stock_deltas(&batch, &items)?;
        store::add_stock(conn, &deltas).await?;
        Ok(())
    }
}

#[async_trait]
impl Projection for PickBacklog {
    fn name(&self) -> &'static str {
        "pick_tasks"
    }

    fn tables(&self) -> &'static [Table] {
        PICK_TASKS
    }

    /// Each order the batch touches: its whole stream read again and its
    /// task written as it says (the same row however often).
    async fn apply(&self, conn: &mut PgConnection, events: &[Recorded]) -> anyhow::Result<()> {
        let batch: Vec<&Envelope> = events.iter().map(|r| &r.envelope).collect();
        let touched = orders(&batch, |_| true);
        let mut rows = Vec::new();
        for (_, history) in store::load_fulfilments(conn, &touched).await? {
            rows.extend(task_row(&history)?);
        }
        store::put_tasks(conn, &rows).await?;
        Ok(())
    }
}

/// The orders of the fulfilment events of `batch` that `pick` takes.
fn orders(batch: &[&Envelope], pick: impl Fn(&Event) -> bool) -> Vec<String> {
    let mut orders: Vec<String> = batch
        .iter()
        .filter(|e| e.payload.as_ref().and_then(wire::event).is_some_and(|e| pick(&e)))
        .map(|e| e.order_id.clone())
        .collect();
    orders.sort();
    orders.dedup();
    orders
}

/// What a batch of events does to one SKU's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StockDelta {
    /// Units received (`stock.on_hand`).
    pub on_hand: i64,
    /// Units reserved less units released (`stock.reserved`).
    pub reserved: i64,
    /// Units shipped (`shipped.quantity`).
    pub shipped: i64,
}

/// Sums what `batch` does to stock, per SKU: goods received, reservations
/// and releases from their payloads, a shipment the items of its order's
/// pick task (`task_items`, by order id), as the pickers ship them.
pub fn stock_deltas(
    batch: &[&Envelope],
    task_items: &HashMap<String, Vec<TaskItem>>,
) -> anyhow::Result<BTreeMap<String, StockDelta>> {
    let mut deltas: BTreeMap<String, StockDelta> = BTreeMap::new();
    let mut add =
        |sku: &str, change: &dyn Fn(&mut StockDelta)| change(deltas.entry(sku.to_owned()).or_default());
    let units = |i: &LineItem| i64::from(i.quantity);
    for env in batch {
        match &env.payload {
            Some(Payload::GoodsReceived(g)) => add(&g.sku, &|d| d.on_hand += g.quantity),
            Some(p) => match wire::event(p) {
                Some(Event::StockReserved(r)) => r
                    .items
                    .iter()
                    .for_each(|i| add(&i.sku, &|d| d.reserved += units(i))),
                Some(Event::StockReleased(r)) => r
                    .items
                    .iter()
                    .for_each(|i| add(&i.sku, &|d| d.reserved -= units(i))),
                Some(Event::OrderShipped(_)) => {
                    let items = task_items
                        .get(&env.order_id)
                        .filter(|items| !items.is_empty())
                        .ok_or_else(|| anyhow::anyhow!("order {} shipped with no pick task", env.order_id))?;
                    for i in items {
                        add(&i.sku, &|d| d.shipped += i64::from(i.quantity));
                    }
                }
                _ => {}
            },
            None => {}
        }
    }
    Ok(deltas)
}

/// An order's pick task as its stream decides it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    pub pick_task_id: Uuid,
    pub order_id: Uuid,
    pub items: Vec<TaskItem>,
    pub status: TaskStatus,
    /// When `PickTaskCreated` occurred.
    pub created_at: DateTime<Utc>,
    /// When the last event that moved it in the queue occurred.
    pub updated_at: DateTime<Utc>,
}

/// The pick task of an order's fulfilment stream (`history`, in version
/// order), if it has one: the task created with the reservation, where the
/// queue puts it by the stream ([`queue_status`], what a refused step
/// requeues it to).
pub fn task_row(history: &[Envelope]) -> anyhow::Result<Option<TaskRow>> {
    let Some(Folded {
        created,
        created_at,
        updated_at,
        state,
    }) = fold(history)
    else {
        return Ok(None);
    };
    let uuid = |id: &str, what: &str| Uuid::parse_str(id).map_err(|e| anyhow::anyhow!("{what} {id:?}: {e}"));
    Ok(Some(TaskRow {
        pick_task_id: uuid(&created.pick_task_id, "pick task id")?,
        order_id: uuid(&created.order_id, "order id")?,
        items: task_items(&created.items),
        status: queue_status(&state, &created.pick_task_id),
        created_at,
        updated_at,
    }))
}

/// An order's fulfilment stream folded: its `PickTaskCreated`, if any, when
/// that occurred, and when the last event that moved the task in the queue
/// did (as the live path stamps `updated_at`).
struct Folded {
    created: PickTaskCreated,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    state: Fulfilment,
}

fn fold(history: &[Envelope]) -> Option<Folded> {
    let mut task: Option<(PickTaskCreated, DateTime<Utc>)> = None;
    let (mut status, mut updated_at) = (None, None);
    let mut state = Fulfilment::default();
    for env in history {
        let Some(event) = env
            .payload
            .as_ref()
            .and_then(<FulfilmentAggregate as Aggregate>::from_wire)
        else {
            continue;
        };
        if let Event::PickTaskCreated(t) = &event {
            task = Some((t.clone(), occurred_at(env)));
        }
        state = evolve(state, &event);
        if let Some((t, _)) = &task {
            let now = queue_status(&state, &t.pick_task_id);
            if status != Some(now) {
                (status, updated_at) = (Some(now), Some(occurred_at(env)));
            }
        }
    }
    let (created, created_at) = task?;
    Some(Folded {
        created,
        created_at,
        updated_at: updated_at.unwrap_or(created_at),
        state,
    })
}

fn task_items(items: &[LineItem]) -> Vec<TaskItem> {
    items
        .iter()
        .map(|i| TaskItem {
            sku: i.sku.clone(),
            quantity: i.quantity,
        })
        .collect()
}
