//! Fulfilment of one order, pure: reserve when the order is placed, create
//! the pick task, and release it for picking once the order is paid.

use omnisaga_proto::v1::{
    envelope::Payload, LineItem, PickTaskCreated, StockReleased, StockReserved, StockUnavailable,
};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fulfilment {
    pub reserved: Option<Vec<LineItem>>,
    pub pick_task_id: Option<String>,
    pub unavailable: bool,
    pub paid: bool,
    pub ready: bool,
    pub shipped: bool,
    pub released: bool,
    pub cancelled: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Reserve the items; `short` lists the SKUs the stock could not cover.
    Reserve {
        order_id: String,
        items: Vec<LineItem>,
        short: Vec<String>,
        pick_task_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FulfilmentError {
    #[error("stock for this order was already handled")]
    AlreadyReserved,
}

pub fn decide(state: &Fulfilment, cmd: Command) -> Result<Vec<Payload>, FulfilmentError> {
    match cmd {
        Command::Reserve { .. } if state.reserved.is_some() || state.unavailable || state.cancelled => {
            Err(FulfilmentError::AlreadyReserved)
        }
        Command::Reserve { order_id, short, .. } if !short.is_empty() => {
            Ok(vec![Payload::StockUnavailable(StockUnavailable {
                order_id,
                skus: short,
            })])
        }
        Command::Reserve {
            order_id,
            items,
            pick_task_id,
            ..
        } => Ok(vec![
            Payload::StockReserved(StockReserved {
                order_id: order_id.clone(),
                items: items.clone(),
            }),
            Payload::PickTaskCreated(PickTaskCreated {
                order_id,
                pick_task_id,
                items,
            }),
        ]),
    }
}

/// Compensation of a cancelled order: stock reserved and not yet shipped goes back.
pub fn release_on_cancel(state: &Fulfilment, order_id: &str) -> Vec<Payload> {
    match &state.reserved {
        Some(items) if !state.shipped && !state.released => {
            vec![Payload::StockReleased(StockReleased {
                order_id: order_id.to_owned(),
                items: items.clone(),
            })]
        }
        _ => vec![],
    }
}

pub fn evolve(mut state: Fulfilment, event: &Payload) -> Fulfilment {
    match event {
        Payload::StockReserved(e) => state.reserved = Some(e.items.clone()),
        Payload::StockUnavailable(_) => state.unavailable = true,
        Payload::PickTaskCreated(e) => state.pick_task_id = Some(e.pick_task_id.clone()),
        Payload::PaymentAuthorized(_) => state.paid = true,
        Payload::OrderReadyForShipment(_) => state.ready = true,
        Payload::OrderShipped(_) => state.shipped = true,
        Payload::StockReleased(_) => state.released = true,
        Payload::OrderCancelled(_) => state.cancelled = true,
        _ => {}
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnisaga_proto::v1::PaymentAuthorized;

    fn reserve(short: Vec<String>) -> Command {
        Command::Reserve {
            order_id: "o-1".into(),
            items: vec![LineItem {
                sku: "A".into(),
                quantity: 2,
                ..Default::default()
            }],
            short,
            pick_task_id: "t-1".into(),
        }
    }

    fn given(events: &[Payload]) -> Fulfilment {
        events.iter().fold(Fulfilment::default(), evolve)
    }

    #[test]
    fn reserving_creates_a_pick_task() {
        let events = decide(&given(&[]), reserve(vec![])).unwrap();
        let types: Vec<_> = events.iter().map(Payload::event_type).collect();
        assert_eq!(types, ["StockReserved", "PickTaskCreated"]);
        assert_eq!(given(&events).pick_task_id.as_deref(), Some("t-1"));
    }

    #[test]
    fn short_stock_is_reported_and_nothing_is_reserved() {
        let events = decide(&given(&[]), reserve(vec!["A".into()])).unwrap();
        assert_eq!(
            events,
            vec![Payload::StockUnavailable(StockUnavailable {
                order_id: "o-1".into(),
                skus: vec!["A".into()]
            })]
        );
        assert_eq!(given(&events).reserved, None);
    }

    #[test]
    fn an_order_is_reserved_once() {
        let events = decide(&given(&[]), reserve(vec![])).unwrap();
        assert_eq!(
            decide(&given(&events), reserve(vec![])),
            Err(FulfilmentError::AlreadyReserved)
        );
    }

    fn cancelled() -> Payload {
        Payload::OrderCancelled(omnisaga_proto::v1::OrderCancelled::default())
    }

    #[test]
    fn a_cancelled_order_releases_its_reservation_once() {
        let reserved = decide(&given(&[]), reserve(vec![])).unwrap();
        let history = [reserved, vec![cancelled()]].concat();
        let released = release_on_cancel(&given(&history), "o-1");
        assert!(matches!(&released[..], [Payload::StockReleased(r)] if r.items.len() == 1));
        assert_eq!(
            release_on_cancel(&given(&[history, released].concat()), "o-1"),
            vec![]
        );
    }

    #[test]
    fn nothing_is_released_when_nothing_was_reserved_or_it_already_shipped() {
        let short = decide(&given(&[]), reserve(vec!["A".into()])).unwrap();
        assert_eq!(
            release_on_cancel(&given(&[short, vec![cancelled()]].concat()), "o-1"),
            vec![]
        );
        let mut shipped = decide(&given(&[]), reserve(vec![])).unwrap();
        shipped.push(Payload::OrderShipped(Default::default()));
        assert_eq!(release_on_cancel(&given(&shipped), "o-1"), vec![]);
    }

    #[test]
    fn a_cancelled_order_is_never_reserved() {
        assert_eq!(
            decide(&given(&[cancelled()]), reserve(vec![])),
            Err(FulfilmentError::AlreadyReserved)
        );
    }

    #[test]
    fn a_payment_seen_before_the_order_is_remembered() {
        let state = given(&[Payload::PaymentAuthorized(PaymentAuthorized::default())]);
        assert!(state.paid);
        assert!(decide(&state, reserve(vec![])).is_ok());
    }
}
