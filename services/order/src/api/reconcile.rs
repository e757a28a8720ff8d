//! `POST /v1/admin/reconcile`: the order service's part of reconciliation
//! (`omnisaga_runtime::reconcile`): its outbox, the orders stuck before
//! the window's end, and the orders shipped in the window with their
//! totals, which payment and notification check next.

use axum::{extract::State, Json};
use chrono::{DateTime, Utc};
use omnisaga_proto::v1::envelope::Payload;
use omnisaga_runtime::{
    http::{ApiError, ApiJson, ErrorBody},
    reconcile::{
        self, ReconcileReport, ReconcileRequest, Shipped, MAX_COUNTEREXAMPLES, MAX_SHIPPED, NOTHING_STUCK,
    },
};
use sqlx::PgConnection;
use uuid::Uuid;

use super::ApiState;
use crate::store;

/// Reconcile the order service's invariants
///
/// Checks, in one read-only snapshot, that every outbox row written before `until` is published and that no order is stuck before `until` (awaiting payment past its deadline, or PLACED, PAID or READY_FOR_SHIPMENT unchanged for ORDER_STUCK_AFTER_MS); lists the orders shipped in `[since, until)` with their totals (at most 5000, `truncated` beyond). Writes nothing.
#[utoipa::path(post, path = "/v1/admin/reconcile", tag = "operations", request_body = ReconcileRequest,
    security(("bearer" = ["reconcile:read"])),
    responses(
        (status = 200, description = "the counterexamples found, and the orders shipped in the window", body = ReconcileReport),
        (status = 422, description = "validation_failed: the window is not in order, in the future or longer than 7 days", body = ErrorBody),
    ))]
pub(super) async fn reconcile(
    State(s): State<ApiState>,
    ApiJson(req): ApiJson<ReconcileRequest>,
) -> Result<Json<ReconcileReport>, ApiError> {
    req.validate()?;
    let mut report = ReconcileReport::new("order");
    let mut tx = reconcile::snapshot(&s.pool).await?;
    reconcile::outbox(&mut tx, req.until, &mut report).await?;
    let stuck_before = req.until - s.config.stuck_after;
    stuck(&mut tx, req.until, stuck_before, &mut report).await?;
    shipped(&mut tx, &req, &mut report).await?;
    tx.commit().await?;
    Ok(Json(report))
}

/// `nothing_stuck`: open orders that should have moved on before `until`.
async fn stuck(
    conn: &mut PgConnection,
    until: DateTime<Utc>,
    unchanged_before: DateTime<Utc>,
    report: &mut ReconcileReport,
) -> Result<(), sqlx::Error> {
    let open = store::count_open(conn).await?;
    report.checked(NOTHING_STUCK, open as usize);
    let rows = store::stuck_before(conn, until, unchanged_before, MAX_COUNTEREXAMPLES).await?;
    for (id, status, updated_at, deadline) in rows {
        let detail = match deadline.filter(|_| status == "AWAITING_PAYMENT") {
            Some(deadline) => format!("awaiting payment past its deadline {}", deadline.to_rfc3339()),
            None => format!("{status} unchanged since {}", updated_at.to_rfc3339()),
        };
        report.broken(NOTHING_STUCK, Some(id.to_string()), format!("order {id}"), detail);
    }
    Ok(())
}

/// The orders shipped in the window and their totals, for the report.
async fn shipped(
    conn: &mut PgConnection,
    req: &ReconcileRequest,
    report: &mut ReconcileReport,
) -> Result<(), sqlx::Error> {
    let mut ids = store::shipped_between(conn, req.since, req.until, MAX_SHIPPED as i64 + 1).await?;
    report.truncated = ids.len() > MAX_SHIPPED;
    ids.truncate(MAX_SHIPPED);
    let keys: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let totals: std::collections::HashMap<String, i64> = reconcile::events_of(conn, &keys, &["OrderPlaced"])
        .await?
        .into_iter()
        .filter_map(|e| match e.payload {
            Some(Payload::OrderPlaced(p)) => Some((p.order_id, p.total.map_or(0, |m| m.minor_units))),
            _ => None,
        })
        .collect();
    report.shipped = ids
        .into_iter()
        .map(|order_id| Shipped {
            order_id,
            total_minor: totals.get(&order_id.to_string()).copied().unwrap_or(0),
        })
        .collect();
    Ok(())
}
