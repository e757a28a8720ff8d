//! The deadlines of the stages that wait on another service (`PLACED`,
//! `PAID`, `READY_FOR_SHIPMENT`): which orders are past theirs and not yet
//! escalated in that stage, and how many wait escalated. Read by the
//! deadline checker every tick and at every scrape, never on an order's
//! way through the saga (the view's one update per change keeps the
//! columns: `sync_view`).

use sqlx::PgPool;
use uuid::Uuid;

use crate::config::StageDeadlines;

/// One order due for escalation: (order, the stage it waits in, how long
/// it has waited there in ms, the trace it was placed in).
pub type DueEscalation = (Uuid, String, i64, Option<String>);

/// Up to `limit` orders waiting in a stage past its deadline in
/// `deadlines`, not yet escalated there, longest waiting first. `PLACED`
/// counts from the placement (the payment delay notice changes the row
/// but not the wait), the others from their last change.
pub async fn due(
    pool: &PgPool,
    deadlines: &StageDeadlines,
    limit: i64,
) -> Result<Vec<DueEscalation>, sqlx::Error> {
    sqlx::query_as(
        "SELECT order_id, status,
                (extract(epoch FROM now() - CASE WHEN status = 'PLACED' THEN created_at ELSE updated_at END) * 1000)::bigint,
                traceparent
         FROM order_view
         WHERE status IN ('PLACED', 'PAID', 'READY_FOR_SHIPMENT')
           AND escalated_status IS DISTINCT FROM status
           AND ((status = 'PLACED' AND created_at <= now() - $1 * interval '1 millisecond')
             OR (status = 'PAID' AND updated_at <= now() - $2 * interval '1 millisecond')
             OR (status = 'READY_FOR_SHIPMENT' AND updated_at <= now() - $3 * interval '1 millisecond'))
         ORDER BY updated_at LIMIT $4",
    )
    .bind(deadlines.placed.as_millis() as f64)
    .bind(deadlines.paid.as_millis() as f64)
    .bind(deadlines.ready_for_shipment.as_millis() as f64)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// How many orders wait escalated in each stage (escalated there and still
/// there), for `omnisaga_sagas_escalated{status}`.
pub async fn count(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM order_view
         WHERE status IN ('PLACED', 'PAID', 'READY_FOR_SHIPMENT') AND escalated_status = status
         GROUP BY status",
    )
    .fetch_all(pool)
    .await?;
    Ok(super::OPEN_STATUSES
        .iter()
        .map(|s| {
            let n = rows.iter().find(|(status, _)| status == s).map_or(0, |(_, n)| *n);
            ((*s).to_owned(), n)
        })
        .collect())
}
