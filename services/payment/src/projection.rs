//! The payment view (`payment_view`) as a projection of the payment streams
//! (`payment-<order id>`): what `omnisaga rebuild payment` makes again from
//! them. Each row is the fold of one order's whole stream, so a batch of
//! events is folded by loading the streams it touches and writing their
//! rows, whatever order the streams' events come in. The provider call
//! queue (`provider_calls`, work in progress) and the provider simulator's
//! ledger (`provider_ledger`, the provider's own records) are not
//! projections.

use async_trait::async_trait;
use omnisaga_runtime::{
    aggregate::Loaded,
    event::occurred_at,
    projection::{Projection, Recorded, Table},
    store::{StoreError, StoredEvent},
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{domain::PaymentAggregate, store::view, wire};

/// The view's table: every column is the stream's (`updated_at` is the
/// time of its last event, also on the live path).
pub const TABLES: &[Table] = &[Table {
    name: "payment_view",
    key: &["order_id"],
    columns: &[
        "order_id",
        "status",
        "attempts",
        "amount_minor",
        "currency",
        "updated_at",
    ],
    rows: None,
}];

/// The payment view, folded from the payment streams.
pub struct PaymentView;

#[async_trait]
impl Projection for PaymentView {
    fn name(&self) -> &'static str {
        "payment_view"
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[Recorded]) -> anyhow::Result<()> {
        let orders = orders_touched(events);
        if orders.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(orders.len());
        for (order_id, history) in view::streams(conn, &orders).await? {
            rows.extend(row_of(order_id, history)?);
        }
        view::upsert(conn, &rows).await?;
        Ok(())
    }
}

/// The orders whose payment streams `events` add to, each once: the
/// events a payment stream keeps, of an order id the service takes.
pub fn orders_touched(events: &[Recorded]) -> Vec<Uuid> {
    let mut orders: Vec<Uuid> = events
        .iter()
        .filter(|e| e.envelope.payload.as_ref().and_then(wire::event).is_some())
        .filter_map(|e| Uuid::parse_str(&e.envelope.order_id).ok())
        .collect();
    orders.sort_unstable();
    orders.dedup();
    orders
}

/// The view's row of `order_id`, whose payment stream is `history`
/// (`None` for an empty one): what the live path writes once it recorded
/// the stream's last event.
pub fn row_of(order_id: Uuid, history: Vec<StoredEvent>) -> Result<Option<view::Row>, StoreError> {
    let Some(last) = history.last().map(|e| occurred_at(&e.envelope)) else {
        return Ok(None);
    };
    let loaded = Loaded::<PaymentAggregate>::fold(history)?;
    Ok(Some(view::Row::of(order_id, &loaded.state, last)))
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use omnisaga_proto::v1::{
        envelope::Payload, Envelope, Money, NotificationSent, OrderCancelled, PaymentAuthorized,
        PaymentFailed, StockReleased,
    };
    use omnisaga_runtime::event::{envelope, EventMeta};

    use super::*;
    use crate::store::ViewStatus;

    const ORDER: &str = "0192f1c4-6e1e-7c3a-9d55-0a4b2b0c9e01";

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 123_456_000).unwrap()
    }

    fn env(producer: &str, payload: Payload, secs: i64) -> Envelope {
        envelope(producer, ORDER, payload, &EventMeta::default(), at(secs))
    }

    fn eur(minor_units: i64) -> Option<Money> {
        Some(Money {
            minor_units,
            currency: "EUR".into(),
        })
    }

    fn stream(envs: Vec<Envelope>) -> Vec<StoredEvent> {
        envs.into_iter()
            .zip(1..)
            .map(|(envelope, version)| StoredEvent { version, envelope })
            .collect()
    }

    fn failed(attempt: u32) -> Payload {
        Payload::PaymentFailed(PaymentFailed {
            order_id: ORDER.into(),
            amount: eur(1999),
            attempt,
            reason: "card_declined".into(),
            ..Default::default()
        })
    }

    #[test]
    fn a_stream_folds_into_the_row_the_live_path_writes_stamped_with_its_last_event() {
        let order = Uuid::parse_str(ORDER).unwrap();
        let authorized = Payload::PaymentAuthorized(PaymentAuthorized {
            order_id: ORDER.into(),
            payment_id: format!("pay-{ORDER}-2"),
            amount: eur(1999),
            attempt: 2,
        });
        let history = stream(vec![env("payment", failed(1), 0), env("payment", authorized, 5)]);
        let row = row_of(order, history).unwrap().unwrap();
        assert_eq!(
            row,
            view::Row {
                order_id: order,
                status: ViewStatus::Authorized,
                attempts: 2,
                amount_minor: 1999,
                currency: "EUR".into(),
                updated_at: at(5),
            }
        );
    }

    #[test]
    fn a_fact_of_another_service_stamps_the_row_with_its_producers_time() {
        let order = Uuid::parse_str(ORDER).unwrap();
        let cancelled = Payload::OrderCancelled(OrderCancelled {
            order_id: ORDER.into(),
            ..Default::default()
        });
        let released = Payload::StockReleased(StockReleased {
            order_id: ORDER.into(),
            ..Default::default()
        });
        let history = stream(vec![env("order", cancelled, 1), env("warehouse", released, 3)]);
        let row = row_of(order, history).unwrap().unwrap();
        assert_eq!(row.status, ViewStatus::Cancelled);
        assert_eq!(
            (row.attempts, row.amount_minor, row.currency.as_str()),
            (0, 0, "")
        );
        assert_eq!(row.updated_at, at(3));
        assert_eq!(row_of(order, Vec::new()).unwrap(), None, "no stream, no row");
    }

    #[test]
    fn a_batch_touches_each_order_of_a_payment_event_once() {
        let other = Uuid::now_v7();
        let recorded = |position, mut envelope: Envelope| {
            if position == 3 {
                envelope.order_id = other.to_string();
            }
            Recorded { position, envelope }
        };
        let mut not_kept = env(
            "notification",
            Payload::NotificationSent(NotificationSent::default()),
            0,
        );
        not_kept.order_id = Uuid::now_v7().to_string();
        let mut not_an_order = env("payment", failed(1), 0);
        not_an_order.order_id = "not-a-uuid".into();
        let events = vec![
            recorded(1, env("payment", failed(1), 0)),
            recorded(2, env("payment", failed(2), 1)),
            recorded(3, env("payment", failed(1), 2)),
            recorded(4, not_kept),
            recorded(5, not_an_order),
        ];
        let mut expected = vec![Uuid::parse_str(ORDER).unwrap(), other];
        expected.sort_unstable();
        assert_eq!(orders_touched(&events), expected);
    }
}
