//! The warehouse database beside the fulfilment streams (which the runtime's
//! aggregate executor keeps, see `crate::wire`): stock levels here, goods
//! received in `receipts`, pick tasks in `tasks`, the projections' folds in
//! `projection`. Every statement of the service is in this module.

use omnisaga_proto::v1::LineItem;
use sqlx::{PgConnection, PgPool, Row};

mod projection;
mod receipts;
mod tasks;

pub use projection::*;
pub use receipts::*;
pub use tasks::*;

/// Where a pick task is in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// Created with the reservation; the order is not paid yet.
    WaitingPayment,
    /// Paid: due to be picked and packed.
    Ready,
    /// Packed: due to ship.
    Packed,
    Shipped,
    Cancelled,
}

impl TaskStatus {
    /// The statuses of tasks still to be worked: the backlog.
    pub const OPEN: [TaskStatus; 3] = [TaskStatus::WaitingPayment, TaskStatus::Ready, TaskStatus::Packed];

    /// The name the `pick_tasks.status` column, the API and the metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::WaitingPayment => "WAITING_PAYMENT",
            TaskStatus::Ready => "READY",
            TaskStatus::Packed => "PACKED",
            TaskStatus::Shipped => "SHIPPED",
            TaskStatus::Cancelled => "CANCELLED",
        }
    }
}

/// Locks the stock rows of `items` and returns the SKUs that cannot be covered.
pub async fn shortfalls(conn: &mut PgConnection, items: &[LineItem]) -> Result<Vec<String>, sqlx::Error> {
    let mut skus: Vec<String> = items.iter().map(|i| i.sku.clone()).collect();
    skus.sort();
    // Locks in SKU order so concurrent reservations never deadlock.
    let rows =
        sqlx::query("SELECT sku, on_hand - reserved FROM stock WHERE sku = ANY($1) ORDER BY sku FOR UPDATE")
            .bind(&skus)
            .fetch_all(&mut *conn)
            .await?;
    let available = |sku: &str| {
        rows.iter()
            .find(|r| r.get::<String, _>(0) == sku)
            .map(|r| r.get::<i64, _>(1))
    };
    Ok(items
        .iter()
        .filter(|i| available(&i.sku).is_none_or(|a| a < i64::from(i.quantity)))
        .map(|i| i.sku.clone())
        .collect())
}

pub async fn reserve(conn: &mut PgConnection, items: &[LineItem]) -> Result<(), sqlx::Error> {
    for i in items {
        sqlx::query("UPDATE stock SET reserved = reserved + $2 WHERE sku = $1")
            .bind(&i.sku)
            .bind(i64::from(i.quantity))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub async fn release(conn: &mut PgConnection, items: &[LineItem]) -> Result<(), sqlx::Error> {
    for i in items {
        sqlx::query("UPDATE stock SET reserved = reserved - $2 WHERE sku = $1")
            .bind(&i.sku)
            .bind(i64::from(i.quantity))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Every SKU's stock: (sku, on hand, reserved), by SKU.
pub async fn stock_levels(pool: &PgPool) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT sku, on_hand, reserved FROM stock_levels ORDER BY sku")
        .fetch_all(pool)
        .await
}

/// Each stocked SKU's counts, for reconciliation: (SKU, on hand, reserved,
/// shipped).
pub async fn stock_counts(conn: &mut PgConnection) -> Result<Vec<(String, i64, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.sku, s.on_hand, s.reserved, coalesce(x.quantity, 0)
         FROM stock s LEFT JOIN shipped x USING (sku)",
    )
    .fetch_all(conn)
    .await
}

/// What the pick tasks not cancelled hold per SKU, for reconciliation:
/// (SKU, held by open tasks, held by shipped tasks).
pub async fn task_quantities(conn: &mut PgConnection) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT i->>'sku',
                coalesce(sum((i->>'quantity')::bigint) FILTER (WHERE t.status <> 'SHIPPED'), 0)::bigint,
                coalesce(sum((i->>'quantity')::bigint) FILTER (WHERE t.status = 'SHIPPED'), 0)::bigint
         FROM pick_tasks t CROSS JOIN LATERAL jsonb_array_elements(t.items) AS i
         WHERE t.status <> 'CANCELLED'
         GROUP BY 1",
    )
    .fetch_all(conn)
    .await
}
