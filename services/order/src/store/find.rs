//! Operators' search of the order view (`GET /v1/admin/orders`): orders by
//! status, customer, channel, placement time and whether they are stuck,
//! newest first, a page at a time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

/// What to look for; every filter given must hold.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub status: Option<String>,
    pub customer_id: Option<String>,
    pub channel: Option<String>,
    /// Placed at or after.
    pub placed_after: Option<DateTime<Utc>>,
    /// Placed before.
    pub placed_before: Option<DateTime<Utc>>,
    /// Only orders past their stage's limit: awaiting payment past the
    /// payment deadline, or `PLACED`, `PAID` or `READY_FOR_SHIPMENT`
    /// unchanged for longer than `stuck_after`: what the gauges
    /// `omnisaga_sagas_past_deadline` and `omnisaga_sagas_stuck` count
    /// (`count_past_payment_deadline`, `count_stuck`).
    pub stuck: bool,
    /// Only orders escalated at their stage's deadline and still waiting
    /// in that stage (what `omnisaga_sagas_escalated` counts).
    pub escalated: bool,
}

/// One order as the view keeps it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FoundOrder {
    pub order_id: Uuid,
    pub order_number: String,
    pub customer_id: String,
    pub channel: Option<String>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub payment_deadline_at: Option<DateTime<Utc>>,
    pub delay_noticed: bool,
    /// The stage it was last escalated in, if any.
    pub escalated_status: Option<String>,
    pub trace_id: Option<String>,
    /// Past its stage's limit now (the filter's `stuck`).
    pub stuck: bool,
}

const COLUMNS: &str = "SELECT order_id, order_number, customer_id, channel, status, created_at, updated_at,
       payment_deadline_at, delay_noticed, escalated_status, trace_id, ";

/// The SQL of "past its stage's limit", with `stuck_after` in milliseconds
/// bound: the same conditions as the gauges' counts. Null for an order
/// awaiting payment without a deadline: the column wraps it in
/// `coalesce`, the filter does not, so the planner can use the partial
/// indexes on open orders (`order_view_waiting`, `order_view_open`)
/// instead of reading every order backwards.
fn push_stuck(q: &mut QueryBuilder<'_, Postgres>, stuck_after: Duration) {
    q.push(
        "((status = 'AWAITING_PAYMENT' AND payment_deadline_at <= now())
          OR (status IN ('PLACED', 'PAID', 'READY_FOR_SHIPMENT') AND updated_at < now() - ",
    )
    .push_bind(stuck_after.as_millis() as f64)
    .push(" * interval '1 millisecond'))");
}

/// [`push_stuck`] as a column that is never null.
fn push_stuck_column(q: &mut QueryBuilder<'_, Postgres>, stuck_after: Duration) {
    q.push("coalesce(");
    push_stuck(q, stuck_after);
    q.push(", false) AS stuck FROM order_view");
}

/// Up to `limit` orders matching `filter` placed before the order `before`
/// (all when `None`), newest first: order ids are UUIDv7, so their order
/// is the order they were placed in (as `orders_of`). Only the filters
/// given are in the statement, so each query uses the index that fits it
/// (the primary key, a customer's orders, the open orders).
pub async fn find(
    pool: &PgPool,
    filter: &Filter,
    stuck_after: Duration,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<FoundOrder>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new(COLUMNS);
    push_stuck_column(&mut q, stuck_after);
    q.push(" WHERE true");
    if let Some(status) = &filter.status {
        q.push(" AND status = ").push_bind(status.clone());
    }
    if let Some(customer) = &filter.customer_id {
        q.push(" AND customer_id = ").push_bind(customer.clone());
    }
    if let Some(channel) = &filter.channel {
        q.push(" AND channel = ").push_bind(channel.clone());
    }
    if let Some(after) = filter.placed_after {
        q.push(" AND created_at >= ").push_bind(after);
    }
    if let Some(before) = filter.placed_before {
        q.push(" AND created_at < ").push_bind(before);
    }
    if filter.stuck {
        q.push(" AND ");
        push_stuck(&mut q, stuck_after);
    }
    if filter.escalated {
        q.push(" AND status IN ('PLACED', 'PAID', 'READY_FOR_SHIPMENT') AND escalated_status = status");
    }
    if let Some(before) = before {
        q.push(" AND order_id < ").push_bind(before);
    }
    q.push(" ORDER BY order_id DESC LIMIT ").push_bind(limit);
    q.build_query_as::<FoundOrder>().fetch_all(pool).await
}

/// One order of the view, as [`find`] returns it.
pub async fn one(
    pool: &PgPool,
    order_id: Uuid,
    stuck_after: Duration,
) -> Result<Option<FoundOrder>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new(COLUMNS);
    push_stuck_column(&mut q, stuck_after);
    q.push(" WHERE order_id = ").push_bind(order_id);
    q.build_query_as::<FoundOrder>().fetch_optional(pool).await
}
