//! The order view (`order_view`) as a projection of the order streams: what
//! each event changes in an order's row ([`view_times`], shared by the
//! commands that keep the view in step and by a rebuild), and the
//! [`OrderView`] a rebuild folds the streams with.
//!
//! The events decide every column but two: `trace_id` and `traceparent`
//! are the trace of the request that placed the order, which no event
//! keeps (a rebuild keeps them on the rows it finds, and leaves them empty
//! on a row it adds).

use std::{collections::BTreeSet, time::Duration};

use chrono::{DateTime, Utc};
use omnisaga_runtime::{
    aggregate::{Decider, Executor},
    event::occurred_at,
    projection::{Projection, Recorded, Table},
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{channel_name, Event, Order, OrderAggregate, Status};

/// When the events folded changed what the view shows of an order.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ViewTimes {
    /// The last event after which its status, escalation or delay notice
    /// differed from before it (`updated_at`); `None`: none did.
    pub updated_at: Option<DateTime<Utc>>,
    /// The first event after which it awaited payment: its payment
    /// deadline counts from there (set once).
    pub awaiting_since: Option<DateTime<Utc>>,
    /// The last event after which the stage it was escalated in changed.
    pub escalated_at: Option<DateTime<Utc>>,
}

/// What the view shows of an order that a change is judged by.
fn shown(order: &Option<Order>) -> Option<(Status, Option<Status>, bool)> {
    order.as_ref().map(|o| (o.status, o.escalated, o.delay_noticed))
}

/// Folds `events` (each with its envelope's time) into `state`, and says
/// when they changed what the view shows ([`ViewTimes`]).
pub fn view_times<'a>(
    mut state: Option<Order>,
    events: impl IntoIterator<Item = (&'a Event, DateTime<Utc>)>,
) -> (Option<Order>, ViewTimes) {
    let mut times = ViewTimes::default();
    for (event, at) in events {
        let before = shown(&state);
        state = OrderAggregate::evolve(state, event);
        let after = shown(&state);
        if after != before {
            times.updated_at = Some(at);
        }
        if after.and_then(|s| s.1) != before.and_then(|s| s.1) {
            times.escalated_at = Some(at);
        }
        if times.awaiting_since.is_none() && after.is_some_and(|s| s.0 == Status::AwaitingPayment) {
            times.awaiting_since = Some(at);
        }
    }
    (state, times)
}

/// The order view, rebuilt from the order streams.
pub struct OrderView {
    /// Its payment deadline after awaiting payment (today's setting).
    pub payment_deadline: Duration,
}

const TABLES: &[Table] = &[Table {
    name: "order_view",
    key: &["order_id"],
    columns: &[
        "order_id",
        "order_number",
        "customer_id",
        "channel",
        "status",
        "created_at",
        "updated_at",
        "payment_deadline_at",
        "delay_noticed",
        "escalated_status",
        "escalated_at",
    ],
    rows: None,
}];

#[async_trait::async_trait]
impl Projection for OrderView {
    fn name(&self) -> &'static str {
        "order_view"
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    /// Each order the events belong to, folded from its whole stream.
    async fn apply(&self, conn: &mut PgConnection, events: &[Recorded]) -> anyhow::Result<()> {
        let orders: BTreeSet<&str> = events.iter().map(|e| e.envelope.order_id.as_str()).collect();
        let executor = Executor::<OrderAggregate>::new("");
        for order_id in orders {
            let history = executor.load(conn, order_id).await?.history;
            let mut folded = Vec::with_capacity(history.len());
            for stored in &history {
                let payload = stored.envelope.payload.as_ref();
                let Some(event) = payload.and_then(crate::wire::event) else {
                    anyhow::bail!("order {order_id}: event {} is not the order's", stored.version);
                };
                folded.push((event, occurred_at(&stored.envelope)));
            }
            let (Some(order), times) = view_times(None, folded.iter().map(|(e, at)| (e, *at))) else {
                continue;
            };
            let created_at = folded.first().map(|(_, at)| *at);
            let deadline = times
                .awaiting_since
                .map(|at| at + chrono::Duration::from_std(self.payment_deadline).unwrap_or_default());
            crate::store::put_view(
                conn,
                crate::store::ViewRow {
                    order_id: Uuid::parse_str(order_id)?,
                    order_number: &order.placed.order_number,
                    customer_id: order
                        .placed
                        .customer
                        .as_ref()
                        .map(|c| c.customer_id.as_str())
                        .unwrap_or_default(),
                    channel: channel_name(order.placed.channel),
                    status: order.status.as_str(),
                    created_at,
                    updated_at: times.updated_at,
                    payment_deadline_at: deadline,
                    delay_noticed: order.delay_noticed,
                    escalated_status: order.escalated.map(|s| s.as_str()),
                    escalated_at: times.escalated_at,
                },
            )
            .await?;
        }
        Ok(())
    }
}
