//! Notification's events on the wire: each [`Event`] to and from its
//! protobuf payload, and an order's messages as the runtime's executor
//! stores them (stream `notifications-<order id>`, every event published on
//! the notifications topic).
//!
//! The mapping names every payload type: a new one in `omnisaga.v1` does
//! not compile here until it is decided whether notification keeps it.

use omnisaga_proto::v1::envelope::Payload;
use omnisaga_runtime::aggregate::{Aggregate, Wire};

use crate::domain::{Event, MessagesAggregate};

impl Aggregate for MessagesAggregate {
    const PRODUCER: &'static str = "notification";

    fn stream(order_id: &str) -> String {
        format!("notifications-{order_id}")
    }

    fn from_wire(payload: &Payload) -> Option<Event> {
        event(payload)
    }

    fn to_wire(event: &Event) -> Wire {
        Wire::Own {
            payload: Box::new(payload(event)),
            publish: true,
        }
    }
}

/// The notification event `payload` is, if notification keeps it.
pub fn event(payload: &Payload) -> Option<Event> {
    match payload {
        Payload::NotificationSent(e) => Some(Event::NotificationSent(e.clone())),
        // What the customer is told about: queued as messages, not kept in
        // the stream.
        Payload::OrderPlaced(_)
        | Payload::PaymentRetryRequested(_)
        | Payload::OrderCancelled(_)
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
        | Payload::OrderShippedV2(_) => None,
        // The warehouse's record of goods received, on no topic.
        Payload::GoodsReceived(_) => None,
    }
}

/// The payload of `event`.
pub fn payload(event: &Event) -> Payload {
    match event {
        Event::NotificationSent(e) => Payload::NotificationSent(e.clone()),
    }
}

#[cfg(test)]
mod tests {
    use omnisaga_proto::v1::NotificationSent;

    use super::*;

    #[test]
    fn a_sent_message_survives_the_wire_and_is_published() {
        let sent = Event::NotificationSent(NotificationSent {
            order_id: "o-1".into(),
            template: "shipped".into(),
            ..Default::default()
        });
        assert_eq!(event(&payload(&sent)), Some(sent.clone()));
        assert!(matches!(
            MessagesAggregate::to_wire(&sent),
            Wire::Own { publish: true, .. }
        ));
        assert_eq!(event(&Payload::OrderShipped(Default::default())), None);
    }
}
