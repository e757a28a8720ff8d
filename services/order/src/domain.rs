//! The order aggregate, pure: `decide` turns a command into events and
//! `evolve` folds an event into the state. No I/O, no clock, no ids: they
//! come in with the command. Events are the canonical `omnisaga.v1` payloads.

use omnisaga_proto::v1::{envelope::Payload, Address, Channel, Customer, LineItem, Money, OrderPlaced};

/// Where an order is in the saga. Ranks only go up, so an event that arrives
/// late (a payment after the warehouse's news) never moves an order back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Placed,
    AwaitingPayment,
    Paid,
    ReadyForShipment,
    Shipped,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Placed => "PLACED",
            Status::AwaitingPayment => "AWAITING_PAYMENT",
            Status::Paid => "PAID",
            Status::ReadyForShipment => "READY_FOR_SHIPMENT",
            Status::Shipped => "SHIPPED",
            Status::Cancelled => "CANCELLED",
        }
    }
}

/// The folded state of one order stream; `None` before `OrderPlaced`.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub placed: OrderPlaced,
    pub status: Status,
}

/// A validated request to place an order, priced from the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaceOrder {
    pub order_id: String,
    pub order_number: String,
    pub customer_id: String,
    pub channel: Channel,
    pub items: Vec<LineItem>,
    pub shipping_address: Address,
    pub payment_method_token: String,
    pub estimated_delivery: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Place(PlaceOrder),
    /// Record a fact another service published about this order.
    Record(Payload),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OrderError {
    #[error("order already exists")]
    AlreadyPlaced,
    #[error("order does not exist")]
    UnknownOrder,
    #[error("an order needs at least one item")]
    NoItems,
    #[error("items are priced in different currencies")]
    MixedCurrencies,
    #[error("event {0} is not one the order records")]
    NotRecorded(&'static str),
}

/// Decides which events a command produces.
pub fn decide(state: Option<&Order>, cmd: Command) -> Result<Vec<Payload>, OrderError> {
    match (state, cmd) {
        (Some(_), Command::Place(_)) => Err(OrderError::AlreadyPlaced),
        (None, Command::Place(p)) => {
            let total = total(&p.items)?;
            Ok(vec![Payload::OrderPlaced(OrderPlaced {
                order_id: p.order_id,
                order_number: p.order_number,
                customer: Some(Customer {
                    customer_id: p.customer_id,
                }),
                channel: p.channel as i32,
                items: p.items,
                total: Some(total),
                shipping_address: Some(p.shipping_address),
                payment_method_token: p.payment_method_token,
                estimated_delivery: p.estimated_delivery,
            })])
        }
        (None, Command::Record(_)) => Err(OrderError::UnknownOrder),
        (Some(_), Command::Record(event)) => match event {
            Payload::PaymentAuthorized(_)
            | Payload::PaymentFailed(_)
            | Payload::PaymentVoided(_)
            | Payload::StockReserved(_)
            | Payload::StockUnavailable(_)
            | Payload::StockReleased(_)
            | Payload::PickTaskCreated(_)
            | Payload::OrderReadyForShipment(_)
            | Payload::OrderShipped(_) => Ok(vec![event]),
            other => Err(OrderError::NotRecorded(other.event_type())),
        },
    }
}

/// Folds one event into the state. No rules here: only what happened.
pub fn evolve(state: Option<Order>, event: &Payload) -> Option<Order> {
    match (state, event) {
        (None, Payload::OrderPlaced(placed)) => Some(Order {
            placed: placed.clone(),
            status: Status::Placed,
        }),
        (None, _) => None,
        (Some(mut order), event) => {
            let reached = match event {
                Payload::PaymentAuthorized(_) => Some(Status::Paid),
                Payload::PaymentFailed(_) => Some(Status::AwaitingPayment),
                Payload::OrderReadyForShipment(_) => Some(Status::ReadyForShipment),
                Payload::OrderShipped(_) => Some(Status::Shipped),
                Payload::OrderCancelled(_) => Some(Status::Cancelled),
                _ => None,
            };
            if let Some(s) = reached {
                if order.status != Status::Cancelled && s > order.status {
                    order.status = s;
                }
            }
            Some(order)
        }
    }
}

/// Sum of the line items; all must share one currency.
pub fn total(items: &[LineItem]) -> Result<Money, OrderError> {
    let first = items.first().ok_or(OrderError::NoItems)?;
    let currency = first
        .unit_price
        .as_ref()
        .map(|m| m.currency.clone())
        .unwrap_or_default();
    let mut minor_units = 0i64;
    for item in items {
        let price = item.unit_price.as_ref().ok_or(OrderError::MixedCurrencies)?;
        if price.currency != currency {
            return Err(OrderError::MixedCurrencies);
        }
        minor_units += price.minor_units * i64::from(item.quantity);
    }
    Ok(Money {
        minor_units,
        currency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnisaga_proto::v1::{OrderReadyForShipment, OrderShipped, PaymentAuthorized, PaymentFailed};

    fn line(sku: &str, qty: u32, price: i64, currency: &str) -> LineItem {
        LineItem {
            sku: sku.into(),
            name: sku.into(),
            quantity: qty,
            unit_price: Some(Money {
                minor_units: price,
                currency: currency.into(),
            }),
        }
    }

    fn place(items: Vec<LineItem>) -> Command {
        Command::Place(PlaceOrder {
            order_id: "o-1".into(),
            order_number: "OS-100001".into(),
            customer_id: "c-1".into(),
            channel: Channel::Mobile,
            items,
            shipping_address: Address::default(),
            payment_method_token: "tok_visa".into(),
            estimated_delivery: "2026-11-27".into(),
        })
    }

    /// given `events`, the folded state.
    fn given(events: &[Payload]) -> Option<Order> {
        events.iter().fold(None, evolve)
    }

    fn placed() -> Payload {
        decide(None, place(vec![line("A", 2, 500, "EUR")]))
            .unwrap()
            .remove(0)
    }

    #[test]
    fn placing_an_order_prices_it_from_its_lines() {
        let events = decide(
            None,
            place(vec![line("A", 2, 500, "EUR"), line("B", 1, 250, "EUR")]),
        )
        .unwrap();
        let Payload::OrderPlaced(p) = &events[0] else {
            panic!("expected OrderPlaced")
        };
        assert_eq!(
            p.total,
            Some(Money {
                minor_units: 1250,
                currency: "EUR".into()
            })
        );
        assert_eq!(given(&events).unwrap().status, Status::Placed);
    }

    #[test]
    fn an_order_cannot_be_placed_twice() {
        let state = given(&[placed()]);
        assert_eq!(
            decide(state.as_ref(), place(vec![line("A", 1, 1, "EUR")])),
            Err(OrderError::AlreadyPlaced)
        );
    }

    #[test]
    fn an_order_without_items_or_with_mixed_currencies_is_refused() {
        assert_eq!(decide(None, place(vec![])), Err(OrderError::NoItems));
        assert_eq!(
            decide(None, place(vec![line("A", 1, 1, "EUR"), line("B", 1, 1, "USD")])),
            Err(OrderError::MixedCurrencies)
        );
    }

    #[test]
    fn facts_about_an_unknown_order_are_refused() {
        let paid = Payload::PaymentAuthorized(PaymentAuthorized::default());
        assert_eq!(decide(None, Command::Record(paid)), Err(OrderError::UnknownOrder));
    }

    #[test]
    fn the_happy_path_moves_through_every_status() {
        let mut events = vec![placed()];
        for (event, status) in [
            (
                Payload::PaymentAuthorized(PaymentAuthorized::default()),
                Status::Paid,
            ),
            (
                Payload::OrderReadyForShipment(OrderReadyForShipment::default()),
                Status::ReadyForShipment,
            ),
            (Payload::OrderShipped(OrderShipped::default()), Status::Shipped),
        ] {
            let state = given(&events);
            events.extend(decide(state.as_ref(), Command::Record(event)).unwrap());
            assert_eq!(given(&events).unwrap().status, status);
        }
    }

    #[test]
    fn a_late_event_never_moves_the_status_back() {
        let state = given(&[
            placed(),
            Payload::OrderReadyForShipment(OrderReadyForShipment::default()),
            Payload::PaymentAuthorized(PaymentAuthorized::default()),
            Payload::PaymentFailed(PaymentFailed::default()),
        ]);
        assert_eq!(state.unwrap().status, Status::ReadyForShipment);
    }

    #[test]
    fn the_order_does_not_record_its_own_placement_from_outside() {
        let state = given(&[placed()]);
        assert_eq!(
            decide(state.as_ref(), Command::Record(placed())),
            Err(OrderError::NotRecorded("OrderPlaced"))
        );
    }
}
