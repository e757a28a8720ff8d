//! `POST /v1/admin/reconcile`: the warehouse's part of reconciliation
//! (`omnisaga_runtime::reconcile`), read in one read-only snapshot: its
//! outbox, and stock conserved per SKU. A reservation and its pick task
//! commit together, as do a shipment and its task's new status, so at any
//! one snapshot what the `stock` and `shipped` rows count is exactly what
//! the pick tasks hold: no settle margin is needed, and none is taken.

use std::collections::BTreeMap;

use omnisaga_runtime::reconcile::{self, ReconcileReport, ReconcileRequest, STOCK_CONSERVED};
use sqlx::PgPool;

use crate::store;

/// One SKU as the tables count it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    /// `stock.on_hand` and `stock.reserved`: what came in and what was
    /// reserved, shipped goods included.
    pub on_hand: i64,
    pub reserved: i64,
    /// `shipped.quantity`.
    pub shipped: i64,
    /// What the open pick tasks (waiting for payment, ready, packed) hold.
    pub open_tasks: i64,
    /// What the shipped pick tasks held.
    pub shipped_tasks: i64,
    /// Whether the SKU has a `stock` row.
    pub stocked: bool,
}

/// Runs the warehouse's checks.
pub async fn check(pool: &PgPool, req: &ReconcileRequest) -> Result<ReconcileReport, sqlx::Error> {
    let mut report = ReconcileReport::new("warehouse");
    let mut tx = reconcile::snapshot(pool).await?;
    reconcile::outbox(&mut tx, req.until, &mut report).await?;
    let mut skus: BTreeMap<String, Counted> = BTreeMap::new();
    let rows = store::stock_counts(&mut tx).await?;
    for (sku, on_hand, reserved, shipped) in rows {
        let c = skus.entry(sku).or_default();
        (c.on_hand, c.reserved, c.shipped, c.stocked) = (on_hand, reserved, shipped, true);
    }
    let held = store::task_quantities(&mut tx).await?;
    for (sku, open, shipped) in held {
        let c = skus.entry(sku).or_default();
        (c.open_tasks, c.shipped_tasks) = (open, shipped);
    }
    tx.commit().await?;
    report.checked(STOCK_CONSERVED, skus.len());
    for (sku, counted) in &skus {
        for detail in conserved(counted) {
            report.broken(STOCK_CONSERVED, None, format!("SKU {sku}"), detail);
        }
    }
    Ok(report)
}

/// `stock_conserved` for one SKU: what does not add up.
pub fn conserved(c: &Counted) -> Vec<String> {
    let mut broken = Vec::new();
    if !c.stocked {
        broken.push("pick tasks hold it, the stock table does not know it".to_owned());
        return broken;
    }
    let (on_hand, reserved) = (c.on_hand - c.shipped, c.reserved - c.shipped);
    if reserved != c.open_tasks {
        broken.push(format!(
            "{reserved} reserved, the open pick tasks hold {}",
            c.open_tasks
        ));
    }
    if c.shipped != c.shipped_tasks {
        broken.push(format!(
            "{} shipped, the shipped pick tasks held {}",
            c.shipped, c.shipped_tasks
        ));
    }
    if on_hand < 0 || reserved < 0 || reserved > on_hand {
        broken.push(format!("{on_hand} on hand, {reserved} reserved"));
    }
    broken
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(on_hand: i64, reserved: i64, shipped: i64, open_tasks: i64, shipped_tasks: i64) -> Counted {
        Counted {
            on_hand,
            reserved,
            shipped,
            open_tasks,
            shipped_tasks,
            stocked: true,
        }
    }

    #[test]
    fn stock_adds_up_when_the_tables_count_what_the_pick_tasks_hold() {
        assert!(conserved(&counted(100, 7, 5, 2, 5)).is_empty());
        assert!(conserved(&counted(100, 8, 5, 2, 5))[0].contains("3 reserved, the open pick tasks hold 2"));
        assert!(conserved(&counted(100, 8, 6, 2, 5))[0].contains("6 shipped"));
        assert!(conserved(&counted(4, 8, 5, 3, 5))
            .iter()
            .any(|d| d.contains("-1 on hand")));
        let unknown = Counted {
            open_tasks: 1,
            ..Counted::default()
        };
        assert_eq!(conserved(&unknown).len(), 1);
    }
}
