//! The orders' rows (`fact_orders`) as a batch of stage events leaves them,
//! one upsert for the whole batch: each order's events are folded in the
//! order received into the change they make together, which is what they
//! would make one after another. Whatever that order, the row comes out the
//! same (each stage keeps its earliest time, counts add up), as a rebuild
//! from the log needs (`crate::projection`).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::Received;
use crate::domain::{completed, Stage, Stages};

/// What one order's events of a batch change in its row.
#[derive(Default)]
struct Change<'a> {
    // A placement's, the latest one's.
    channel: Option<&'static str>,
    customer_id: Option<&'a str>,
    placed_day: Option<NaiveDate>,
    items: Option<i32>,
    total_minor_units: Option<i64>,
    currency: Option<&'a str>,
    // Each stage's earliest time in the batch (the row keeps an earlier
    // one): whichever order its events arrive in, as a rebuild has it.
    placed_at: Option<DateTime<Utc>>,
    paid_at: Option<DateTime<Utc>>,
    ready_at: Option<DateTime<Utc>>,
    shipped_at: Option<DateTime<Utc>>,
    cancelled_at: Option<DateTime<Utc>>,
    payment_failures: i32,
    payment_voids: i32,
    /// A shipment or a cancellation among them: an order that shipped is
    /// not cancelled, whichever of the two arrived first (as at the order
    /// service; the cancellation stays a stage).
    settles: bool,
    /// The timed stages and when each event says they were reached.
    timed: Vec<(Stage, DateTime<Utc>)>,
}

impl<'a> Change<'a> {
    /// Adds `event`, a stage event of the order, after the ones before it.
    /// Each stage is kept as `Stage::kept` says.
    fn add(&mut self, event: &Received<'a>) {
        let at = event.occurred_at;
        if let Some(p) = &event.placement {
            self.channel = Some(p.channel);
            self.customer_id = Some(p.customer_id).filter(|c| !c.is_empty());
            self.placed_day = Some(at.date_naive());
            self.items = Some(p.lines.iter().map(|l| l.quantity).sum());
            self.total_minor_units = Some(p.total_minor_units);
            self.currency = Some(p.currency);
        }
        let Some(stage) = event.stage else {
            return;
        };
        match stage {
            Stage::Placed => earliest(&mut self.placed_at, at),
            Stage::Paid => earliest(&mut self.paid_at, at),
            Stage::ReadyForShipment => earliest(&mut self.ready_at, at),
            Stage::Shipped => earliest(&mut self.shipped_at, at),
            Stage::Cancelled => earliest(&mut self.cancelled_at, at),
            Stage::PaymentDeclined => self.payment_failures += 1,
            Stage::PaymentVoided => self.payment_voids += 1,
        }
        self.settles |= matches!(stage, Stage::Shipped | Stage::Cancelled);
        if stage.is_timed() {
            self.timed.push((stage, at));
        }
    }

    /// Whether one of its events set `stage`'s time in `stages` (the row's
    /// as it is after them): the row had none before.
    fn set(&self, stage: Stage, stages: &Stages) -> bool {
        let now = match stage {
            Stage::Placed => stages.placed,
            Stage::Paid => stages.paid,
            Stage::ReadyForShipment => stages.ready,
            Stage::Shipped => stages.shipped,
            _ => None,
        };
        self.timed.iter().any(|(s, at)| *s == stage && Some(*at) == now)
    }
}

/// `at`, if it is earlier than the time in `slot` (or there is none).
fn earliest(slot: &mut Option<DateTime<Utc>>, at: DateTime<Utc>) {
    if slot.is_none_or(|t| at < t) {
        *slot = Some(at);
    }
}

/// Records `staged` (stage events, in the order received) in their orders'
/// rows; the stage durations they completed.
pub(super) async fn record(
    conn: &mut PgConnection,
    staged: &[&Received<'_>],
) -> Result<Vec<(&'static str, f64)>, sqlx::Error> {
    // By order id: every batch locks rows in the same order.
    let mut changes: BTreeMap<Uuid, Change> = BTreeMap::new();
    for event in staged {
        changes.entry(event.order_id).or_default().add(event);
    }
    let column = |pick: fn(&Change) -> Option<DateTime<Utc>>| changes.values().map(pick).collect::<Vec<_>>();
    let rows = sqlx::query(
        "INSERT INTO fact_orders AS o (order_id, channel, placed_day, items, total_minor_units, currency,
                                       placed_at, paid_at, ready_at, shipped_at, cancelled_at,
                                       payment_failures, payment_voids, customer_id)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::date[], $4::int[], $5::bigint[], $6::text[],
                              $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[],
                              $11::timestamptz[], $12::int[], $13::int[], $15::text[])
         ON CONFLICT (order_id) DO UPDATE SET
             channel = coalesce(EXCLUDED.channel, o.channel),
             customer_id = coalesce(EXCLUDED.customer_id, o.customer_id),
             placed_day = coalesce(EXCLUDED.placed_day, o.placed_day),
             items = coalesce(EXCLUDED.items, o.items),
             total_minor_units = coalesce(EXCLUDED.total_minor_units, o.total_minor_units),
             currency = coalesce(EXCLUDED.currency, o.currency),
             placed_at = least(o.placed_at, EXCLUDED.placed_at),
             paid_at = least(o.paid_at, EXCLUDED.paid_at),
             ready_at = least(o.ready_at, EXCLUDED.ready_at),
             shipped_at = least(o.shipped_at, EXCLUDED.shipped_at),
             cancelled_at = CASE WHEN o.order_id = ANY($14::uuid[])
                                      AND coalesce(o.shipped_at, EXCLUDED.shipped_at) IS NOT NULL THEN NULL
                                 ELSE least(o.cancelled_at, EXCLUDED.cancelled_at) END,
             payment_failures = o.payment_failures + EXCLUDED.payment_failures,
             payment_voids = o.payment_voids + EXCLUDED.payment_voids
         RETURNING order_id, placed_at, paid_at, ready_at, shipped_at",
    )
    .bind(changes.keys().copied().collect::<Vec<_>>())
    .bind(changes.values().map(|c| c.channel).collect::<Vec<_>>())
    .bind(changes.values().map(|c| c.placed_day).collect::<Vec<_>>())
    .bind(changes.values().map(|c| c.items).collect::<Vec<_>>())
    .bind(changes.values().map(|c| c.total_minor_units).collect::<Vec<_>>())
    .bind(changes.values().map(|c| c.currency).collect::<Vec<_>>())
    .bind(column(|c| c.placed_at))
    .bind(column(|c| c.paid_at))
    .bind(column(|c| c.ready_at))
    .bind(column(|c| c.shipped_at))
    // A new row: a shipment among the events leaves no cancellation.
    .bind(column(|c| c.cancelled_at.filter(|_| c.shipped_at.is_none())))
    .bind(changes.values().map(|c| c.payment_failures).collect::<Vec<_>>())
    .bind(changes.values().map(|c| c.payment_voids).collect::<Vec<_>>())
    .bind(
        changes
            .iter()
            .filter(|(_, c)| c.settles)
            .map(|(id, _)| *id)
            .collect::<Vec<_>>(),
    )
    .bind(changes.values().map(|c| c.customer_id).collect::<Vec<_>>())
    .fetch_all(conn)
    .await?;
    let mut done = Vec::new();
    for row in rows {
        let order_id: Uuid = row.get(0);
        let stages = Stages {
            placed: row.get(1),
            paid: row.get(2),
            ready: row.get(3),
            shipped: row.get(4),
        };
        if let Some(change) = changes.get(&order_id) {
            done.extend(completed(&stages, |stage| change.set(stage, &stages)));
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn event(stage: Stage, second: u32) -> Received<'static> {
        Received {
            event_id: Uuid::new_v4(),
            order_id: Uuid::nil(),
            event_type: "",
            occurred_at: Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, second).unwrap(),
            topic: "",
            envelope: Vec::new(),
            stage: Some(stage),
            placement: None,
            payment: None,
        }
    }

    #[test]
    fn an_orders_change_is_the_same_whichever_order_its_events_arrive_in() {
        // Each stage twice (a redelivery under a new id, a second answer):
        // the earlier time is kept, as a rebuild in log order keeps it.
        let events = [
            event(Stage::Placed, 5),
            event(Stage::Placed, 1),
            event(Stage::Paid, 9),
            event(Stage::Paid, 7),
            event(Stage::Cancelled, 20),
            event(Stage::Cancelled, 12),
            event(Stage::PaymentDeclined, 3),
        ];
        let fold = |events: &mut dyn Iterator<Item = &Received<'static>>| {
            let mut change = Change::default();
            events.for_each(|e| change.add(e));
            (
                change.placed_at,
                change.paid_at,
                change.cancelled_at,
                change.payment_failures,
            )
        };
        let forward = fold(&mut events.iter());
        assert_eq!(forward, fold(&mut events.iter().rev()));
        assert_eq!(forward.0, Some(events[1].occurred_at));
        assert_eq!(forward.1, Some(events[3].occurred_at));
        assert_eq!(forward.2, Some(events[5].occurred_at));
    }
}
