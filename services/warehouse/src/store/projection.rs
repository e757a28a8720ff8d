//! The statements of the warehouse's projections (`crate::projection`):
//! run by a rebuild with the `rebuild` schema first on the search path, so
//! the tables named here are its copies; `events` is the live store. Each
//! is one statement per batch of events, however many rows it writes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use omnisaga_proto::v1::Envelope;
use omnisaga_runtime::store;
use sqlx::{types::Json, PgConnection, Row};
use uuid::Uuid;

use crate::projection::{StockDelta, TaskRow};

/// The fulfilment streams of `order_ids`, whole: (order id, its events in
/// version order).
pub async fn load_fulfilments(
    conn: &mut PgConnection,
    order_ids: &[String],
) -> anyhow::Result<Vec<(String, Vec<Envelope>)>> {
    if order_ids.is_empty() {
        return Ok(vec![]);
    }
    let streams: Vec<String> = order_ids.iter().map(|id| format!("fulfilment-{id}")).collect();
    let rows = sqlx::query(
        "SELECT stream_id, version, envelope FROM events WHERE stream_id = ANY($1) ORDER BY stream_id, version",
    )
    .bind(&streams)
    .fetch_all(conn)
    .await?;
    let mut loaded: Vec<(String, Vec<Envelope>)> = Vec::new();
    for row in rows {
        let stream: &str = row.get(0);
        let order_id = stream.strip_prefix("fulfilment-").unwrap_or(stream);
        let event = store::decode(row.get(1), row.get(2))?;
        match loaded.last_mut() {
            Some((id, events)) if id == order_id => events.push(event.envelope),
            _ => loaded.push((order_id.to_owned(), vec![event.envelope])),
        }
    }
    Ok(loaded)
}

/// Adds `deltas` to the `stock` and `shipped` rows of their SKUs.
pub async fn add_stock(
    conn: &mut PgConnection,
    deltas: &BTreeMap<String, StockDelta>,
) -> Result<(), sqlx::Error> {
    let counted: Vec<(&String, &StockDelta)> = deltas
        .iter()
        .filter(|(_, d)| d.on_hand != 0 || d.reserved != 0)
        .collect();
    if !counted.is_empty() {
        sqlx::query(
            "INSERT INTO stock (sku, on_hand, reserved)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
             ON CONFLICT (sku) DO UPDATE SET on_hand = stock.on_hand + EXCLUDED.on_hand,
                                             reserved = stock.reserved + EXCLUDED.reserved",
        )
        .bind(counted.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>())
        .bind(counted.iter().map(|(_, d)| d.on_hand).collect::<Vec<_>>())
        .bind(counted.iter().map(|(_, d)| d.reserved).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    let shipped: Vec<(&String, i64)> = deltas
        .iter()
        .filter(|(_, d)| d.shipped != 0)
        .map(|(s, d)| (s, d.shipped))
        .collect();
    if !shipped.is_empty() {
        sqlx::query(
            "INSERT INTO shipped (sku, quantity)
             SELECT * FROM unnest($1::text[], $2::bigint[])
             ON CONFLICT (sku) DO UPDATE SET quantity = shipped.quantity + EXCLUDED.quantity",
        )
        .bind(shipped.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>())
        .bind(shipped.iter().map(|(_, q)| *q).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Writes `rows` as the pick tasks they are, the work state of a task
/// that exists kept.
pub async fn put_tasks(conn: &mut PgConnection, rows: &[TaskRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.pick_task_id).collect();
    let orders: Vec<Uuid> = rows.iter().map(|r| r.order_id).collect();
    let items: Vec<Json<&[crate::store::TaskItem]>> = rows.iter().map(|r| Json(r.items.as_slice())).collect();
    let statuses: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
    let created: Vec<DateTime<Utc>> = rows.iter().map(|r| r.created_at).collect();
    let updated: Vec<DateTime<Utc>> = rows.iter().map(|r| r.updated_at).collect();
    sqlx::query(
        "INSERT INTO pick_tasks (pick_task_id, order_id, items, status, created_at, updated_at)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::jsonb[], $4::text[], $5::timestamptz[], $6::timestamptz[])
         ON CONFLICT (pick_task_id) DO UPDATE SET order_id = EXCLUDED.order_id, items = EXCLUDED.items,
                status = EXCLUDED.status, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at",
    )
    .bind(&ids)
    .bind(&orders)
    .bind(&items)
    .bind(&statuses)
    .bind(&created)
    .bind(&updated)
    .execute(conn)
    .await?;
    Ok(())
}
