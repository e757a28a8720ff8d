//! Payment's events on the wire: each [`Event`] to and from its protobuf
//! payload, and the payment aggregate as the runtime's executor stores it
//! (stream `payment-<order id>`, payment's own events published on the
//! payments topic, other services' facts kept as the envelopes they came in).
//!
//! Both mappings name every payload type: a new one in `omnisaga.v1` does
//! not compile here until it is decided whether payment keeps it.

use omnisaga_proto::v1::envelope::Payload;
use omnisaga_runtime::aggregate::{Aggregate, Wire};

use crate::domain::{publishes, Event, PaymentAggregate};

impl Aggregate for PaymentAggregate {
    const PRODUCER: &'static str = "payment";

    fn stream(order_id: &str) -> String {
        format!("payment-{order_id}")
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

/// The payment event `payload` is, if payment keeps it.
pub fn event(payload: &Payload) -> Option<Event> {
    match payload {
        Payload::PaymentAuthorized(e) => Some(Event::PaymentAuthorized(e.clone())),
        Payload::PaymentFailed(e) => Some(Event::PaymentFailed(e.clone())),
        Payload::PaymentVoided(e) => Some(Event::PaymentVoided(e.clone())),
        Payload::OrderCancelled(e) => Some(Event::OrderCancelled(e.clone())),
        Payload::StockReleased(e) => Some(Event::StockReleased(e.clone())),
        Payload::StockUnavailable(e) => Some(Event::StockUnavailable(e.clone())),
        // Commands to payment (placement and retries start an attempt) and
        // the rest of the saga's progress, which payment never records.
        Payload::OrderPlaced(_)
        | Payload::PaymentRetryRequested(_)
        | Payload::StockReserved(_)
        | Payload::PickTaskCreated(_)
        | Payload::OrderReadyForShipment(_)
        | Payload::OrderShipped(_)
        | Payload::OrderShippedV2(_)
        | Payload::NotificationSent(_)
        | Payload::PaymentDelayed(_)
        | Payload::OrderEscalated(_)
        | Payload::GoodsReceived(_) => None,
    }
}

/// The payload of `event`.
pub fn payload(event: &Event) -> Payload {
    match event {
        Event::PaymentAuthorized(e) => Payload::PaymentAuthorized(e.clone()),
        Event::PaymentFailed(e) => Payload::PaymentFailed(e.clone()),
        Event::PaymentVoided(e) => Payload::PaymentVoided(e.clone()),
        Event::OrderCancelled(e) => Payload::OrderCancelled(e.clone()),
        Event::StockReleased(e) => Payload::StockReleased(e.clone()),
        Event::StockUnavailable(e) => Payload::StockUnavailable(e.clone()),
    }
}

#[cfg(test)]
mod tests {
    use omnisaga_proto::v1::{
        OrderCancelled, PaymentAuthorized, PaymentFailed, PaymentVoided, StockReleased, StockUnavailable,
    };

    use super::*;

    #[test]
    fn every_event_survives_the_wire_and_is_stored_by_the_right_convention() {
        let events = [
            Event::PaymentAuthorized(PaymentAuthorized {
                order_id: "o-1".into(),
                attempt: 1,
                ..Default::default()
            }),
            Event::PaymentFailed(PaymentFailed {
                reason: "card_declined".into(),
                ..Default::default()
            }),
            Event::PaymentVoided(PaymentVoided::default()),
            Event::OrderCancelled(OrderCancelled::default()),
            Event::StockReleased(StockReleased::default()),
            Event::StockUnavailable(StockUnavailable::default()),
        ];
        for e in &events {
            assert_eq!(event(&payload(e)).as_ref(), Some(e));
            assert_eq!(payload(e).event_type(), e.name());
            match PaymentAggregate::to_wire(e) {
                Wire::Own { payload: p, publish } => {
                    assert!(publish, "{e:?}");
                    assert_eq!(*p, payload(e));
                }
                Wire::Fact => assert!(!publishes(e), "{e:?} is payment's own"),
            }
        }
        assert_eq!(
            event(&Payload::OrderPlaced(Default::default())),
            None,
            "a command to payment is not kept in its stream"
        );
    }
}
