//! The warehouse's events on the wire: each [`Event`] to and from its
//! protobuf payload, and the fulfilment aggregate as the runtime's executor
//! stores it (stream `fulfilment-<order id>`, the warehouse's own events
//! published on the warehouse topic, other services' facts kept as the
//! envelopes they came in).
//!
//! Both mappings name every payload type: a new one in `omnisaga.v1` does
//! not compile here until it is decided whether the warehouse keeps it.

use omnisaga_proto::v1::envelope::Payload;
use omnisaga_runtime::{
    aggregate::{Aggregate, Wire},
    upcast,
};

use crate::domain::{publishes, Event, FulfilmentAggregate, Shipped};

impl Aggregate for FulfilmentAggregate {
    const PRODUCER: &'static str = "warehouse";

    fn stream(order_id: &str) -> String {
        format!("fulfilment-{order_id}")
    }

    fn from_wire(payload: &Payload) -> Option<Event> {
        event(payload)
    }

    fn to_wire(event: &Event) -> Wire {
        if publishes(event) {
            Wire::Own {
                payload: Box::new(payload(event)),
                publish: true,
            }
        } else {
            Wire::Fact
        }
    }
}

/// The warehouse event `payload` is, if the warehouse keeps it.
pub fn event(payload: &Payload) -> Option<Event> {
    match payload {
        Payload::StockReserved(e) => Some(Event::StockReserved(e.clone())),
        Payload::StockUnavailable(e) => Some(Event::StockUnavailable(e.clone())),
        Payload::PickTaskCreated(e) => Some(Event::PickTaskCreated(e.clone())),
        Payload::StockReleased(e) => Some(Event::StockReleased(e.clone())),
        Payload::OrderReadyForShipment(e) => Some(Event::OrderReadyForShipment(e.clone())),
        Payload::OrderShipped(e) => Some(Event::OrderShipped(Shipped {
            shipment: upcast::order_shipped(e),
            as_v1: true,
        })),
        Payload::OrderShippedV2(e) => Some(Event::OrderShipped(Shipped {
            shipment: e.clone(),
            as_v1: false,
        })),
        Payload::PaymentAuthorized(e) => Some(Event::PaymentAuthorized(e.clone())),
        Payload::OrderCancelled(e) => Some(Event::OrderCancelled(e.clone())),
        // The placement is a command to the warehouse (it reserves); the
        // rest is other services' business.
        Payload::OrderPlaced(_)
        | Payload::PaymentFailed(_)
        | Payload::PaymentVoided(_)
        | Payload::PaymentRetryRequested(_)
        | Payload::PaymentDelayed(_)
        | Payload::OrderEscalated(_)
        | Payload::NotificationSent(_) => None,
        // Goods received are a SKU's (streams `stock-<sku>`, kept by
        // `crate::store::receipts`), not an order's fulfilment.
        Payload::GoodsReceived(_) => None,
    }
}

/// The payload of `event`.
pub fn payload(event: &Event) -> Payload {
    match event {
        Event::StockReserved(e) => Payload::StockReserved(e.clone()),
        Event::StockUnavailable(e) => Payload::StockUnavailable(e.clone()),
        Event::PickTaskCreated(e) => Payload::PickTaskCreated(e.clone()),
        Event::StockReleased(e) => Payload::StockReleased(e.clone()),
        Event::OrderReadyForShipment(e) => Payload::OrderReadyForShipment(e.clone()),
        Event::OrderShipped(Shipped {
            shipment,
            as_v1: true,
        }) => Payload::OrderShipped(upcast::order_shipped_v1(shipment)),
        Event::OrderShipped(Shipped {
            shipment,
            as_v1: false,
        }) => Payload::OrderShippedV2(shipment.clone()),
        Event::PaymentAuthorized(e) => Payload::PaymentAuthorized(e.clone()),
        Event::OrderCancelled(e) => Payload::OrderCancelled(e.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_survives_the_wire_and_is_stored_by_the_right_convention() {
        let events = [
            Event::StockReserved(Default::default()),
            Event::StockUnavailable(Default::default()),
            Event::PickTaskCreated(Default::default()),
            Event::StockReleased(Default::default()),
            Event::OrderReadyForShipment(Default::default()),
            Event::OrderShipped(Default::default()),
            // Version 1 holds one parcel.
            Event::OrderShipped(Shipped {
                shipment: omnisaga_proto::v2::OrderShipped {
                    order_id: "o-1".into(),
                    parcels: vec![omnisaga_proto::v2::Parcel {
                        carrier: "omnisaga-post".into(),
                        tracking_number: "OSP1".into(),
                    }],
                },
                as_v1: true,
            }),
            Event::PaymentAuthorized(Default::default()),
            Event::OrderCancelled(Default::default()),
        ];
        for e in &events {
            assert_eq!(event(&payload(e)).as_ref(), Some(e));
            match FulfilmentAggregate::to_wire(e) {
                Wire::Own { payload: p, publish } => {
                    assert!(publish, "{e:?}");
                    assert_eq!(*p, payload(e));
                }
                Wire::Fact => assert!(!publishes(e), "{e:?} is the warehouse's own"),
            }
        }
        assert_eq!(event(&Payload::OrderPlaced(Default::default())), None);
    }
}
