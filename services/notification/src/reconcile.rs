//! `POST /v1/admin/reconcile`: the notification service's part of
//! reconciliation (`omnisaga_runtime::reconcile`), read in one read-only
//! snapshot: its outbox, and every order shipped in the window (the order
//! service's list) told so: its `shipped` message sent.

use std::collections::BTreeMap;

use omnisaga_runtime::reconcile::{self, ReconcileReport, ReconcileRequest, SHIPPED_TOLD};
use sqlx::PgPool;
use uuid::Uuid;

use crate::store;

/// Runs the notification service's checks.
pub async fn check(pool: &PgPool, req: &ReconcileRequest) -> Result<ReconcileReport, sqlx::Error> {
    let mut report = ReconcileReport::new("notification");
    let mut tx = reconcile::snapshot(pool).await?;
    reconcile::outbox(&mut tx, req.until, &mut report).await?;
    let ids: Vec<Uuid> = req.shipped.iter().map(|s| s.order_id).collect();
    let messages = store::shipped_statuses(&mut tx, &ids).await?;
    tx.commit().await?;
    let mut status: BTreeMap<Uuid, Vec<String>> = BTreeMap::new();
    for (order, s) in messages {
        status.entry(order).or_default().push(s);
    }
    report.checked(SHIPPED_TOLD, ids.len());
    for id in ids {
        let detail = match status.get(&id).map(Vec::as_slice) {
            None | Some([]) => "shipped, the customer was never told: no 'shipped' message".to_owned(),
            Some(s) if s.iter().any(|s| s == "SENT") => continue,
            Some(s) => format!("shipped, its 'shipped' message is {}", s.join(", ")),
        };
        report.broken(SHIPPED_TOLD, Some(id.to_string()), format!("order {id}"), detail);
    }
    Ok(report)
}
