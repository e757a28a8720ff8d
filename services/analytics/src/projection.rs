//! The star schema as a projection of analytics' own event log
//! (`received_events`, docs/rebuild.md): what `omnisaga rebuild analytics`
//! makes again from the envelopes kept there, with the same code the
//! consumer records events with ([`store::project`]).
//!
//! Events received before the log kept envelopes (migration 1003) cannot be
//! folded again: the rows of their orders are outside what a rebuild
//! compares or touches ([`store::log`]).

use anyhow::Context as _;
use async_trait::async_trait;
use omnisaga_runtime::projection::{Projection, Recorded, Source, Table};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    handlers,
    store::{self, Known, Received},
};

/// The star schema's facts and the dimensions that grow with them
/// (`dim_channel`, `dim_stage` and `dim_payment_outcome` are fixed rows of
/// the migrations, no projection's).
#[derive(Debug, Default)]
pub struct StarSchema;

#[async_trait]
impl Projection for StarSchema {
    fn name(&self) -> &'static str {
        "star_schema"
    }

    fn source(&self) -> Source {
        store::log::SOURCE
    }

    fn tables(&self) -> &'static [Table] {
        store::log::TABLES
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[Recorded]) -> anyhow::Result<()> {
        let received = received_all(events)?;
        let received: Vec<&Received> = received.iter().collect();
        // A rebuild's own: the copies start empty, whatever this process wrote.
        let known = Known::default();
        store::project(conn, &known, &received).await?;
        store::log::leave_out_unkept(conn, &received).await?;
        Ok(())
    }
}

/// `events` as the consumer read them (their topic is not needed: it is
/// only in `received_events`, the log itself).
fn received_all(events: &[Recorded]) -> anyhow::Result<Vec<Received<'_>>> {
    let mut received = Vec::with_capacity(events.len());
    for event in events {
        let env = &event.envelope;
        let order_id = Uuid::parse_str(&env.order_id)
            .with_context(|| format!("event at {} names order {:?}", event.position, env.order_id))?;
        received.extend(handlers::received(env, order_id, "", false));
    }
    Ok(received)
}

#[cfg(test)]
mod tests {
    use omnisaga_proto::v1::{
        envelope::Payload, Channel, Customer, Envelope, LineItem, Money, OrderPlaced, OrderShipped,
        PaymentFailed,
    };
    use omnisaga_runtime::{testing, upcast};
    use prost::Message as _;

    use super::*;

    fn eur(minor_units: i64) -> Option<Money> {
        Some(Money {
            minor_units,
            currency: "EUR".into(),
        })
    }

    /// A placement with a customer and a line, a decline with its reason,
    /// and a shipment of version 1 (a rebuild reads it upcast to version 2).
    fn events(order_id: Uuid) -> Vec<Envelope> {
        let id = order_id.to_string();
        let placed = OrderPlaced {
            order_id: id.clone(),
            channel: Channel::Web.into(),
            customer: Some(Customer {
                customer_id: "c-7".into(),
            }),
            items: vec![LineItem {
                sku: "SKU-TEA".into(),
                name: "Tea".into(),
                quantity: 2,
                unit_price: eur(450),
            }],
            total: eur(900),
            ..Default::default()
        };
        let declined = PaymentFailed {
            order_id: id.clone(),
            payment_id: "p-1".into(),
            attempt: 1,
            reason: "card_declined".into(),
            amount: eur(900),
            ..Default::default()
        };
        let shipped = OrderShipped {
            order_id: id.clone(),
            carrier: "DHL".into(),
            tracking_number: "T1".into(),
        };
        vec![
            testing::envelope("order", &id, Payload::OrderPlaced(placed)),
            testing::envelope("payment", &id, Payload::PaymentFailed(declined)),
            testing::envelope("warehouse", &id, Payload::OrderShipped(shipped)),
        ]
    }

    #[test]
    fn a_rebuild_reads_each_event_from_its_kept_bytes_as_the_consumer_read_it() {
        let order_id = Uuid::new_v4();
        let sent = events(order_id);
        let live: Vec<Received> = sent
            .iter()
            .map(|env| handlers::received(env, order_id, "omnisaga.orders.v1", true).unwrap())
            .collect();
        // As the engine reads the log: decoded, upcast, in position order.
        let recorded: Vec<Recorded> = live
            .iter()
            .zip(1..)
            .map(|(r, position)| Recorded {
                position,
                envelope: upcast::envelope(Envelope::decode(r.envelope.as_slice()).unwrap()),
            })
            .collect();
        assert!(matches!(
            recorded[2].envelope.payload,
            Some(Payload::OrderShippedV2(_))
        ));
        let rebuilt = received_all(&recorded).unwrap();
        assert_eq!(rebuilt.len(), live.len());
        for (mut l, r) in live.into_iter().zip(rebuilt) {
            // The log itself: not folded again.
            (l.topic, l.envelope) = (r.topic, Vec::new());
            assert_eq!(l, r);
        }
    }

    #[test]
    fn an_event_naming_no_order_stops_the_rebuild_with_its_position() {
        let mut env = events(Uuid::new_v4()).remove(0);
        env.order_id = "not-a-uuid".into();
        let err = received_all(&[Recorded {
            position: 42,
            envelope: env,
        }])
        .unwrap_err();
        assert!(err.to_string().contains("event at 42"), "{err}");
    }

    #[test]
    fn every_table_lists_its_key_among_its_columns_and_no_generated_column() {
        for table in store::log::TABLES {
            for key in table.key {
                assert!(table.columns.contains(key), "{}: {key}", table.name);
            }
            assert!(!table.columns.contains(&"payment_outcome"), "{}", table.name);
        }
    }
}
