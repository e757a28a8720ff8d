//! The order facts of a window read a batch at a time through a cursor of
//! one read-only snapshot ([`super::snapshot`]): each `FETCH` is a
//! statement of its own, so the statement timeout bounds each batch, not
//! the whole export, and only a batch is in memory at once.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::window::Window;

/// Rows one `FETCH` reads.
const BATCH: i64 = 500;

/// One order's row of `fact_orders`, as the export writes it.
#[derive(Debug, Clone)]
pub struct OrderFact {
    pub order_id: Uuid,
    pub customer_id: Option<String>,
    pub channel: Option<String>,
    pub placed_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub ready_at: Option<DateTime<Utc>>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub payment_outcome: String,
    pub payment_failures: i32,
    pub payment_voids: i32,
    pub items: Option<i32>,
    pub total_minor_units: Option<i64>,
    pub currency: Option<String>,
}

/// Opens the cursor of the orders placed in `window`, by placement time
/// (then order id), in `tx`: a transaction of [`super::snapshot`].
pub async fn open_order_facts(tx: &mut PgConnection, window: &Window) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DECLARE order_facts NO SCROLL CURSOR FOR
         SELECT order_id, customer_id, channel, placed_at, paid_at, ready_at, shipped_at, cancelled_at,
                payment_outcome, payment_failures, payment_voids, items, total_minor_units, currency
         FROM fact_orders
         WHERE placed_at >= $1 AND placed_at < $2
         ORDER BY placed_at, order_id",
    )
    .bind(window.from)
    .bind(window.to)
    .execute(tx)
    .await?;
    Ok(())
}

/// The cursor's next batch; empty once it is done.
pub async fn next_order_facts(tx: &mut PgConnection) -> Result<Vec<OrderFact>, sqlx::Error> {
    let rows = sqlx::query(&format!("FETCH {BATCH} FROM order_facts"))
        .fetch_all(tx)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| OrderFact {
            order_id: r.get(0),
            customer_id: r.get(1),
            channel: r.get(2),
            placed_at: r.get(3),
            paid_at: r.get(4),
            ready_at: r.get(5),
            shipped_at: r.get(6),
            cancelled_at: r.get(7),
            payment_outcome: r.get(8),
            payment_failures: r.get(9),
            payment_voids: r.get(10),
            items: r.get(11),
            total_minor_units: r.get(12),
            currency: r.get(13),
        })
        .collect())
}
