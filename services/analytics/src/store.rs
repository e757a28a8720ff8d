//! The analytics database: every event received (`received_events`) and
//! when each order reached each stage (`order_stages`), with the summary's
//! queries over them. One function per statement.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::domain::{Stage, Stages};

/// An event as received.
pub struct Received<'a> {
    pub event_id: Uuid,
    pub order_id: Uuid,
    pub event_type: &'a str,
    pub occurred_at: DateTime<Utc>,
    pub topic: &'a str,
}

/// Records `event`; whether it is new (a redelivered one is not).
pub async fn record_received(conn: &mut PgConnection, event: &Received<'_>) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO received_events (event_id, order_id, event_type, occurred_at, topic)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(event.event_id)
    .bind(event.order_id)
    .bind(event.event_type)
    .bind(event.occurred_at)
    .bind(event.topic)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Records that `order_id` reached `stage` at `at`, unless it was recorded
/// reaching it before.
pub async fn mark_stage(
    conn: &mut PgConnection,
    order_id: Uuid,
    stage: Stage,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let column = stage.column();
    // `column` comes from the fixed list of `Stage`, never from input.
    let sql = format!(
        "INSERT INTO order_stages (order_id, {column}) VALUES ($1, $2)
         ON CONFLICT (order_id) DO UPDATE SET {column} = coalesce(order_stages.{column}, $2)"
    );
    sqlx::query(&sql).bind(order_id).bind(at).execute(conn).await?;
    Ok(())
}

/// When `order_id` reached its timed stages, if the time it reached `stage`
/// is `at` (the event that says so set it); `None` otherwise.
pub async fn stages_if_reached_at(
    conn: &mut PgConnection,
    order_id: Uuid,
    stage: Stage,
    at: DateTime<Utc>,
) -> Result<Option<Stages>, sqlx::Error> {
    let column = stage.column();
    // `column` comes from the fixed list of `Stage`, never from input.
    let sql = format!(
        "SELECT placed_at, paid_at, ready_at, shipped_at FROM order_stages
         WHERE order_id = $1 AND {column} = $2"
    );
    let row = sqlx::query(&sql)
        .bind(order_id)
        .bind(at)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| Stages {
        placed: r.get(0),
        paid: r.get(1),
        ready: r.get(2),
        shipped: r.get(3),
    }))
}

/// Counts one more failed payment attempt of `order_id`.
pub async fn count_payment_failure(conn: &mut PgConnection, order_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO order_stages (order_id, payment_failures) VALUES ($1, 1)
         ON CONFLICT (order_id) DO UPDATE SET payment_failures = order_stages.payment_failures + 1",
    )
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// How many orders reached each stage.
pub struct StageCounts {
    pub placed: i64,
    pub paid: i64,
    pub ready_for_shipment: i64,
    pub shipped: i64,
    pub cancelled: i64,
}

/// How many orders reached each stage.
pub async fn stage_counts(pool: &PgPool) -> Result<StageCounts, sqlx::Error> {
    let r = sqlx::query(
        "SELECT count(placed_at), count(paid_at), count(ready_at), count(shipped_at), count(cancelled_at)
         FROM order_stages",
    )
    .fetch_one(pool)
    .await?;
    Ok(StageCounts {
        placed: r.get(0),
        paid: r.get(1),
        ready_for_shipment: r.get(2),
        shipped: r.get(3),
        cancelled: r.get(4),
    })
}

/// How many payment attempts were authorised and how many failed.
pub async fn payment_answers(pool: &PgPool) -> Result<(i64, i64), sqlx::Error> {
    let r = sqlx::query(
        "SELECT count(*) FILTER (WHERE event_type = 'PaymentAuthorized'),
                count(*) FILTER (WHERE event_type = 'PaymentFailed')
         FROM received_events WHERE event_type IN ('PaymentAuthorized', 'PaymentFailed')",
    )
    .fetch_one(pool)
    .await?;
    Ok((r.get(0), r.get(1)))
}

/// The distribution of the milliseconds from placement to a stage over the
/// orders that reached both; no percentile without any.
pub struct Percentiles {
    pub count: i64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// The distribution of the time from placement to `stage`.
pub async fn time_to(pool: &PgPool, stage: Stage) -> Result<Percentiles, sqlx::Error> {
    let column = stage.column();
    // `column` comes from the fixed list of `Stage`, never from input.
    let sql = format!(
        "SELECT count(*),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
                percentile_cont(0.95) WITHIN GROUP (ORDER BY ms),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY ms),
                max(ms)
         FROM (SELECT extract(epoch FROM {column} - placed_at)::float8 * 1000 AS ms
               FROM order_stages WHERE {column} IS NOT NULL AND placed_at IS NOT NULL) d"
    );
    let r = sqlx::query(&sql).fetch_one(pool).await?;
    Ok(Percentiles {
        count: r.get(0),
        p50: r.get(1),
        p95: r.get(2),
        p99: r.get(3),
        max: r.get(4),
    })
}
