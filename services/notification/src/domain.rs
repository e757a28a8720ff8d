//! What the customer is told, decided without I/O: which event gets which
//! message, which messages a cancellation makes stale, who receives them and
//! the text each one says.

use omnisaga_proto::v1::{envelope::Payload, OrderPlaced};

/// The customer id an order's messages go to: the one `placed` names, or
/// `guest` for an order placed without one.
pub fn recipient_of(placed: &OrderPlaced) -> &str {
    placed
        .customer
        .as_ref()
        .map(|c| c.customer_id.as_str())
        .unwrap_or("guest")
}

/// The template a customer message uses for `event`, if the customer is told about it.
pub fn template_for(event: &Payload) -> Option<&'static str> {
    match event {
        Payload::OrderPlaced(_) => Some("order_created"),
        Payload::PaymentAuthorized(_) => Some("payment_confirmed"),
        Payload::PaymentFailed(_) => Some("payment_failed"),
        Payload::OrderReadyForShipment(_) => Some("ready_for_shipment"),
        Payload::OrderShipped(_) => Some("shipped"),
        Payload::OrderCancelled(_) => Some("order_cancelled"),
        Payload::PaymentDelayed(_) => Some("payment_delayed"),
        _ => None,
    }
}

/// Whether `template` is stale once the customer was told the order is
/// cancelled: news that it was paid or packed would mislead (the
/// authorisation is voided, the parcel unpacked). "Shipped" is still sent: a
/// parcel that left before the cancellation arrived does ship.
pub fn stale_once_cancelled(template: &str) -> bool {
    matches!(template, "payment_confirmed" | "ready_for_shipment")
}

/// The message text of `template` for order `number`.
pub fn render(template: &str, number: &str) -> String {
    match template {
        "order_created" => format!("Order created: {number} is confirmed. We'll keep you posted."),
        "payment_confirmed" => format!("Payment confirmed for order {number}."),
        "payment_failed" => format!("Payment failed: please retry. Order {number} is waiting for payment."),
        "ready_for_shipment" => format!("Ready for shipment: order {number} is packed."),
        "shipped" => format!("Shipped: order {number} is on its way."),
        "order_cancelled" => format!("Order {number} was cancelled."),
        "payment_delayed" => {
            format!(
                "Payment is delayed: order {number} is saved and will go ahead as soon as payment answers."
            )
        }
        other => format!("Update on order {number}: {other}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnisaga_proto::v1::{Customer, StockReserved};

    #[test]
    fn customers_hear_about_steps_not_internal_events() {
        assert_eq!(
            template_for(&Payload::OrderPlaced(OrderPlaced::default())),
            Some("order_created")
        );
        assert_eq!(
            template_for(&Payload::StockReserved(StockReserved::default())),
            None
        );
    }

    #[test]
    fn after_a_cancellation_paid_and_packed_news_is_not_sent_but_shipped_is() {
        assert!(stale_once_cancelled("payment_confirmed"));
        assert!(stale_once_cancelled("ready_for_shipment"));
        for still_told in ["shipped", "order_cancelled", "payment_failed", "order_created"] {
            assert!(!stale_once_cancelled(still_told), "{still_told}");
        }
    }

    #[test]
    fn messages_go_to_the_customer_who_placed_the_order_or_to_a_guest() {
        let placed = OrderPlaced {
            customer: Some(Customer {
                customer_id: "c-42".into(),
            }),
            ..Default::default()
        };
        assert_eq!(recipient_of(&placed), "c-42");
        assert_eq!(recipient_of(&OrderPlaced::default()), "guest");
    }

    #[test]
    fn every_template_names_the_order_and_an_unknown_one_still_says_something() {
        for template in [
            "order_created",
            "payment_confirmed",
            "payment_failed",
            "ready_for_shipment",
            "shipped",
            "order_cancelled",
            "payment_delayed",
            "renamed_later",
        ] {
            assert!(render(template, "OS-7").contains("OS-7"), "{template}");
        }
        assert_eq!(
            render("renamed_later", "OS-7"),
            "Update on order OS-7: renamed_later."
        );
    }

    #[test]
    fn the_failure_message_asks_for_a_retry() {
        assert!(render("payment_failed", "OS-1").starts_with("Payment failed: please retry"));
    }
}
