//! The reads behind live order updates (`crate::api::events`). A position
//! is `(tx, global_position)`: the appending transaction (`events.tx`,
//! migration 1007) and the store's global position; an event is settled
//! once its transaction is older than every one still running, so no event
//! can later appear before a position already read.

use sqlx::{PgConnection, PgPool};

/// The newest settled position of the whole store (the poller's start).
pub async fn newest(conn: &mut PgConnection) -> Result<Option<(i64, i64)>, sqlx::Error> {
    // Qualified: a bare `tx` would sort by the output column, the bigint,
    // which no index serves.
    sqlx::query_as(
        "SELECT e.tx::text::bigint, e.global_position FROM events e
         WHERE e.tx < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY e.tx DESC, e.global_position DESC LIMIT 1",
    )
    .fetch_optional(conn)
    .await
}

/// Up to `limit` committed events after `(tx, at)`, each as its position,
/// order id, its order's customer ('' when the order has no view) and
/// whether it is settled (settled ones sort first).
pub async fn committed_after(
    conn: &mut PgConnection,
    (tx, at): (i64, i64),
    limit: i64,
) -> Result<Vec<(i64, i64, String, String, bool)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.tx::text::bigint, e.global_position, e.order_id, coalesce(v.customer_id, ''),
                e.tx < pg_snapshot_xmin(pg_current_snapshot())
         FROM events e
         LEFT JOIN order_view v
           ON v.order_id = CASE WHEN e.order_id ~ '^[0-9a-fA-F-]{36}$' THEN e.order_id::uuid END
         WHERE (e.tx, e.global_position) > ($1::bigint::text::xid8, $2)
         ORDER BY e.tx, e.global_position LIMIT $3",
    )
    .bind(tx)
    .bind(at)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The newest settled position among `customer`'s orders.
pub async fn customer_newest(pool: &PgPool, customer: &str) -> Result<Option<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.tx::text::bigint, e.global_position FROM events e
         WHERE e.stream_id IN (SELECT 'order-' || order_id FROM order_view WHERE customer_id = $1)
           AND e.tx < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY e.tx DESC, e.global_position DESC LIMIT 1",
    )
    .bind(customer)
    .fetch_optional(pool)
    .await
}

/// The last event at or before `(tx, at)` of each of `customer`'s open
/// orders: its position, stream and version.
pub async fn customer_open_latest(
    pool: &PgPool,
    customer: &str,
    (tx, at): (i64, i64),
) -> Result<Vec<(i64, i64, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT DISTINCT ON (e.stream_id) e.tx::text::bigint, e.global_position, e.stream_id, e.version
         FROM events e
         WHERE e.stream_id IN (SELECT 'order-' || order_id FROM order_view WHERE customer_id = $1
                 AND status IN ('PLACED', 'AWAITING_PAYMENT', 'PAID', 'READY_FOR_SHIPMENT'))
           AND (e.tx, e.global_position) <= ($2::bigint::text::xid8, $3)
         ORDER BY e.stream_id, e.version DESC",
    )
    .bind(customer)
    .bind(tx)
    .bind(at)
    .fetch_all(pool)
    .await
}

/// Up to `limit` events of `customer`'s orders after `(tx, at)`: position,
/// stream, version, and whether it is settled (settled ones sort first).
pub async fn customer_after(
    pool: &PgPool,
    customer: &str,
    (tx, at): (i64, i64),
    limit: i64,
) -> Result<Vec<(i64, i64, String, i64, bool)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.tx::text::bigint, e.global_position, e.stream_id, e.version,
                e.tx < pg_snapshot_xmin(pg_current_snapshot())
         FROM events e
         WHERE e.stream_id IN (SELECT 'order-' || order_id FROM order_view WHERE customer_id = $1)
           AND (e.tx, e.global_position) > ($2::bigint::text::xid8, $3)
         ORDER BY e.tx, e.global_position LIMIT $4",
    )
    .bind(customer)
    .bind(tx)
    .bind(at)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The events of `stream`, version and envelope, after version `after`.
pub async fn stream_after(
    pool: &PgPool,
    stream: &str,
    after: i64,
) -> Result<Vec<(i64, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT version, envelope FROM events WHERE stream_id = $1 AND version > $2 ORDER BY version",
    )
    .bind(stream)
    .bind(after)
    .fetch_all(pool)
    .await
}
