//! The order's events on the wire: each [`Event`] to and from its protobuf
//! payload, and the order aggregate as the runtime's executor stores it
//! (stream `order-<order id>`, the order's own events published on the
//! orders topic, payment's and the warehouse's facts kept as the envelopes
//! they came in).
//!
//! Both mappings name every payload type: a new one in `omnisaga.v1` does
//! not compile here until it is decided whether the order keeps it.

use omnisaga_proto::v1::{envelope::Payload, Address, Envelope};
use omnisaga_runtime::{
    aggregate::{Aggregate, Wire},
    upcast,
};

use crate::domain::{Event, OrderAggregate};

impl Aggregate for OrderAggregate {
    const PRODUCER: &'static str = "order";

    fn stream(order_id: &str) -> String {
        format!("order-{order_id}")
    }

    fn from_wire(payload: &Payload) -> Option<Event> {
        event(payload)
    }

    fn to_wire(event: &Event) -> Wire {
        if event.is_own() {
            Wire::Own {
                payload: Box::new(payload(event)),
                publish: true,
            }
        } else {
            Wire::Fact
        }
    }

    fn public(envelope: &Envelope) -> Envelope {
        let mut public = envelope.clone();
        if let Some(payload) = public.payload.as_mut() {
            without_personal_data(payload);
        }
        public
    }
}

/// What the orders topic, which every service and analyst reads, may not
/// carry goes: the payment token (payment asks the order service for it,
/// `GET /v1/internal/orders/{id}/payment-methods/{attempt}`) and the
/// shipping address but its country and postal area (the first two
/// characters of the postal code). The customer id stays. The order's own
/// stream keeps everything.
pub fn without_personal_data(payload: &mut Payload) {
    match payload {
        Payload::OrderPlaced(placed) => {
            placed.payment_method_token.clear();
            if let Some(address) = placed.shipping_address.as_mut() {
                *address = Address {
                    country: std::mem::take(&mut address.country),
                    postal_code: address.postal_code.chars().take(POSTAL_AREA).collect(),
                    ..Address::default()
                };
            }
        }
        Payload::PaymentRetryRequested(retry) => retry.payment_method_token.clear(),
        // Nothing personal beyond the customer id; a new payload type is
        // decided here before it compiles.
        Payload::OrderCancelled(_)
        | Payload::PaymentDelayed(_)
        | Payload::OrderEscalated(_)
        | Payload::PaymentAuthorized(_)
        | Payload::PaymentFailed(_)
        | Payload::PaymentVoided(_)
        | Payload::StockReserved(_)
        | Payload::StockUnavailable(_)
        | Payload::StockReleased(_)
        | Payload::PickTaskCreated(_)
        | Payload::OrderReadyForShipment(_)
        | Payload::OrderShipped(_)
        | Payload::OrderShippedV2(_)
        | Payload::NotificationSent(_)
        | Payload::GoodsReceived(_) => {}
    }
}

/// Characters of a postal code the topics carry: its area.
const POSTAL_AREA: usize = 2;

/// The order event `payload` is, if the order keeps it.
pub fn event(payload: &Payload) -> Option<Event> {
    match payload {
        Payload::OrderPlaced(e) => Some(Event::OrderPlaced(e.clone())),
        Payload::OrderCancelled(e) => Some(Event::OrderCancelled(e.clone())),
        Payload::PaymentRetryRequested(e) => Some(Event::PaymentRetryRequested(e.clone())),
        Payload::PaymentDelayed(e) => Some(Event::PaymentDelayed(e.clone())),
        Payload::OrderEscalated(e) => Some(Event::OrderEscalated(e.clone())),
        Payload::PaymentAuthorized(e) => Some(Event::PaymentAuthorized(e.clone())),
        Payload::PaymentFailed(e) => Some(Event::PaymentFailed(e.clone())),
        Payload::PaymentVoided(e) => Some(Event::PaymentVoided(e.clone())),
        Payload::StockReserved(e) => Some(Event::StockReserved(e.clone())),
        Payload::StockUnavailable(e) => Some(Event::StockUnavailable(e.clone())),
        Payload::StockReleased(e) => Some(Event::StockReleased(e.clone())),
        Payload::PickTaskCreated(e) => Some(Event::PickTaskCreated(e.clone())),
        Payload::OrderReadyForShipment(e) => Some(Event::OrderReadyForShipment(e.clone())),
        Payload::OrderShipped(e) => Some(Event::OrderShipped(upcast::order_shipped(e))),
        Payload::OrderShippedV2(e) => Some(Event::OrderShipped(e.clone())),
        // The customer's messages are notification's record, not the order's.
        Payload::NotificationSent(_) => None,
        // The warehouse's record of goods received, on no topic.
        Payload::GoodsReceived(_) => None,
    }
}

/// The payload of `event`.
pub fn payload(event: &Event) -> Payload {
    match event {
        Event::OrderPlaced(e) => Payload::OrderPlaced(e.clone()),
        Event::OrderCancelled(e) => Payload::OrderCancelled(e.clone()),
        Event::PaymentRetryRequested(e) => Payload::PaymentRetryRequested(e.clone()),
        Event::PaymentDelayed(e) => Payload::PaymentDelayed(e.clone()),
        Event::OrderEscalated(e) => Payload::OrderEscalated(e.clone()),
        Event::PaymentAuthorized(e) => Payload::PaymentAuthorized(e.clone()),
        Event::PaymentFailed(e) => Payload::PaymentFailed(e.clone()),
        Event::PaymentVoided(e) => Payload::PaymentVoided(e.clone()),
        Event::StockReserved(e) => Payload::StockReserved(e.clone()),
        Event::StockUnavailable(e) => Payload::StockUnavailable(e.clone()),
        Event::StockReleased(e) => Payload::StockReleased(e.clone()),
        Event::PickTaskCreated(e) => Payload::PickTaskCreated(e.clone()),
        Event::OrderReadyForShipment(e) => Payload::OrderReadyForShipment(e.clone()),
        Event::OrderShipped(e) => Payload::OrderShippedV2(e.clone()),
    }
}

#[cfg(test)]
mod tests {
    use omnisaga_proto::v1::{Customer, OrderPlaced, PaymentRetryRequested};

    use super::*;

    #[test]
    fn every_event_survives_the_wire_and_is_stored_by_the_right_convention() {
        let events = [
            Event::OrderPlaced(Default::default()),
            Event::OrderCancelled(Default::default()),
            Event::PaymentRetryRequested(Default::default()),
            Event::PaymentDelayed(Default::default()),
            Event::OrderEscalated(Default::default()),
            Event::PaymentAuthorized(Default::default()),
            Event::PaymentFailed(Default::default()),
            Event::PaymentVoided(Default::default()),
            Event::StockReserved(Default::default()),
            Event::StockUnavailable(Default::default()),
            Event::StockReleased(Default::default()),
            Event::PickTaskCreated(Default::default()),
            Event::OrderReadyForShipment(Default::default()),
            Event::OrderShipped(Default::default()),
        ];
        for e in &events {
            assert_eq!(event(&payload(e)).as_ref(), Some(e));
            assert_eq!(payload(e).event_type(), e.name());
            match OrderAggregate::to_wire(e) {
                Wire::Own { payload: p, publish } => {
                    assert!(publish && e.is_own(), "{e:?}");
                    assert_eq!(*p, payload(e));
                }
                Wire::Fact => assert!(!e.is_own(), "{e:?} is the order's own"),
            }
        }
        assert_eq!(event(&Payload::NotificationSent(Default::default())), None);
    }

    #[test]
    fn what_goes_on_the_topic_keeps_the_customer_id_country_and_postal_area_only() {
        let mut placed = Payload::OrderPlaced(OrderPlaced {
            order_id: "o-1".into(),
            customer: Some(Customer {
                customer_id: "c-1".into(),
            }),
            shipping_address: Some(Address {
                name: "Ada Lovelace".into(),
                line1: "1 Main St".into(),
                line2: "Flat 2".into(),
                city: "Berlin".into(),
                postal_code: "10115".into(),
                country: "DE".into(),
            }),
            payment_method_token: "tok_visa".into(),
            ..Default::default()
        });
        without_personal_data(&mut placed);
        let Payload::OrderPlaced(p) = placed else {
            unreachable!()
        };
        assert_eq!(p.payment_method_token, "");
        assert_eq!(
            p.shipping_address,
            Some(Address {
                postal_code: "10".into(),
                country: "DE".into(),
                ..Address::default()
            })
        );
        assert_eq!(p.customer.unwrap().customer_id, "c-1");

        let mut retry = Payload::PaymentRetryRequested(PaymentRetryRequested {
            payment_method_token: "tok_visa".into(),
            attempt: 2,
            ..Default::default()
        });
        without_personal_data(&mut retry);
        let Payload::PaymentRetryRequested(r) = retry else {
            unreachable!()
        };
        assert_eq!((r.payment_method_token.as_str(), r.attempt), ("", 2));
    }
}
