//! Properties of the order aggregate over arbitrary command sequences: the
//! facts of payment and the warehouse arrive in any order and any number,
//! the customer and the deadlines act at any time, and whatever `decide`
//! accepts, folded by `evolve`, keeps the order consistent.

use proptest::prelude::*;

use super::*;

const ORDER_ID: &str = "o-1";

/// Line items as the catalog prices them: one or two currencies, prices and
/// quantities within what a catalog and the API's limits allow.
fn line_items() -> impl Strategy<Value = Vec<LineItem>> {
    let line = (
        "[A-Z]{1,3}",
        1u32..=100,
        0i64..=1_000_000,
        prop::sample::select(vec!["EUR", "USD"]),
    )
        .prop_map(|(sku, quantity, minor_units, currency)| LineItem {
            name: sku.clone(),
            sku,
            quantity,
            unit_price: Some(Money {
                minor_units,
                currency: currency.into(),
            }),
        });
    prop::collection::vec(line, 0..4)
}

fn place() -> impl Strategy<Value = Command> {
    line_items().prop_map(|items| {
        Command::Place(PlaceOrder {
            order_id: ORDER_ID.into(),
            order_number: "OS-100001".into(),
            customer_id: "c-1".into(),
            channel: Channel::Web,
            items,
            shipping_address: Address::default(),
            payment_method_token: "tok_visa".into(),
            estimated_delivery: "2026-11-30".into(),
        })
    })
}

/// A fact of payment or the warehouse, or one of the order's own events
/// pretending to come from outside.
fn fact() -> impl Strategy<Value = Event> {
    let id = || ORDER_ID.to_owned();
    prop_oneof![
        (1u32..5).prop_map(move |attempt| Event::PaymentAuthorized(PaymentAuthorized {
            order_id: id(),
            attempt,
            ..Default::default()
        })),
        (1u32..5).prop_map(move |attempt| Event::PaymentFailed(PaymentFailed {
            order_id: id(),
            attempt,
            reason: "card_declined".into(),
            retryable: true,
            ..Default::default()
        })),
        Just(Event::PaymentVoided(PaymentVoided::default())),
        Just(Event::StockReserved(StockReserved::default())),
        Just(Event::StockUnavailable(StockUnavailable::default())),
        Just(Event::StockReleased(StockReleased::default())),
        Just(Event::PickTaskCreated(PickTaskCreated::default())),
        Just(Event::OrderReadyForShipment(OrderReadyForShipment::default())),
        Just(Event::OrderShipped(OrderShipped::default())),
        Just(Event::OrderPlaced(OrderPlaced::default())),
        Just(Event::OrderCancelled(OrderCancelled::default())),
        Just(Event::PaymentRetryRequested(PaymentRetryRequested::default())),
        Just(Event::PaymentDelayed(PaymentDelayed::default())),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        1 => place(),
        6 => fact().prop_map(Command::Record),
        2 => "tok_[a-z]{1,8}".prop_map(|payment_method_token| Command::RetryPayment { payment_method_token }),
        1 => prop::sample::select(vec!["customer_request", PAYMENT_DEADLINE_PASSED])
            .prop_map(|reason| Command::Cancel { reason: reason.into() }),
        1 => (0i64..100_000).prop_map(|waited_ms| Command::NoticePaymentDelay { waited_ms }),
        1 => Just(Command::PaymentDeadlinePassed),
    ]
}

/// Every attempt number an event of `history` names.
fn attempts(history: &[Event]) -> impl Iterator<Item = u32> + '_ {
    history.iter().filter_map(|e| match e {
        Event::PaymentAuthorized(e) => Some(e.attempt),
        Event::PaymentFailed(e) => Some(e.attempt),
        Event::PaymentRetryRequested(e) => Some(e.attempt),
        _ => None,
    })
}

/// Checks one accepted decision against the state it was taken in.
fn check_decision(before: Option<&Order>, cmd: &Command, history: &[Event], decided: &[Event]) {
    match cmd {
        Command::Record(fact) => {
            assert_eq!(
                decided.first(),
                Some(fact),
                "a recorded fact comes first, as it came"
            );
            assert!(
                !fact.is_own(),
                "the order records none of its own events from outside"
            );
            assert!(
                decided[1..].iter().all(Event::is_own),
                "reactions are the order's own"
            );
        }
        _ => assert!(
            decided.iter().all(Event::is_own),
            "a command decides only own events"
        ),
    }
    let Some(order) = before else {
        assert!(
            matches!(cmd, Command::Place(_)),
            "only a placement starts an order"
        );
        return;
    };
    for event in decided {
        match event {
            Event::OrderCancelled(c) => {
                assert!(
                    !matches!(order.status, Status::Cancelled | Status::Shipped),
                    "cancelled while {:?}",
                    order.status
                );
                assert_eq!(c.order_id, order.placed.order_id);
            }
            Event::PaymentRetryRequested(r) => {
                assert_eq!(order.status, Status::AwaitingPayment);
                assert!(!order.retry_pending, "one retry at a time");
                assert!(
                    attempts(history).all(|a| a < r.attempt),
                    "a retry asks for an attempt never made"
                );
            }
            Event::PaymentDelayed(_) => assert_eq!(order.status, Status::Placed),
            _ => {}
        }
    }
}

/// Checks the status reached after a decision against the one before it.
fn check_transition(before: Option<&Order>, after: Option<&Order>) {
    let (Some(before), Some(after)) = (before, after) else {
        return;
    };
    let allowed = match before.status {
        // The parcel left before the cancellation reached the warehouse.
        Status::Cancelled => matches!(after.status, Status::Cancelled | Status::Shipped),
        Status::Shipped => after.status == Status::Shipped,
        s => after.status >= s,
    };
    assert!(allowed, "{:?} moved back to {:?}", before.status, after.status);
    assert_eq!(after.placed, before.placed, "the placement never changes");
    assert!(after.attempts >= before.attempts);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_command_sequence_keeps_the_order_consistent(commands in prop::collection::vec(command(), 0..16)) {
        let mut history: Vec<Event> = Vec::new();
        let mut state: Option<Order> = None;
        for cmd in commands {
            match decide(state.as_ref(), cmd.clone()) {
                Ok(decided) => {
                    check_decision(state.as_ref(), &cmd, &history, &decided);
                    let after = decided.iter().fold(state.clone(), evolve);
                    check_transition(state.as_ref(), after.as_ref());
                    history.extend(decided);
                    state = after;
                }
                Err(OrderError::UnknownOrder) => prop_assert!(state.is_none()),
                Err(OrderError::AlreadyPlaced) => prop_assert!(state.is_some()),
                Err(OrderError::NoItems | OrderError::MixedCurrencies) => {
                    prop_assert!(state.is_none() && matches!(cmd, Command::Place(_)))
                }
                Err(_) => prop_assert!(state.is_some(), "only a placement is decided before the order exists"),
            }
            prop_assert_eq!(&state, &history.iter().fold(None, evolve), "the state is its history folded");
        }
        let count = |name: &str| history.iter().filter(|e| e.name() == name).count();
        prop_assert!(count("OrderPlaced") <= 1);
        prop_assert!(count("OrderCancelled") <= 1, "cancelled once at most: {:?}", history);
        let shipped_at = history.iter().position(|e| matches!(e, Event::OrderShipped(_)));
        let cancelled_at = history.iter().rposition(|e| matches!(e, Event::OrderCancelled(_)));
        if let (Some(shipped), Some(cancelled)) = (shipped_at, cancelled_at) {
            prop_assert!(cancelled < shipped, "a shipped order is never cancelled");
        }
        if let Some(order) = &state {
            prop_assert_eq!(order.status == Status::Cancelled, order.cancel_reason.is_some() && shipped_at.is_none());
        }
    }

    #[test]
    fn the_total_is_the_sum_of_the_lines_in_their_one_currency(items in line_items()) {
        match total(&items) {
            Ok(money) => {
                let sum: i64 = items
                    .iter()
                    .map(|i| i.unit_price.as_ref().unwrap().minor_units * i64::from(i.quantity))
                    .sum();
                prop_assert_eq!(money.minor_units, sum);
                prop_assert!(items.iter().all(|i| i.unit_price.as_ref().unwrap().currency == money.currency));
            }
            Err(OrderError::NoItems) => prop_assert!(items.is_empty()),
            Err(OrderError::MixedCurrencies) => {
                let first = &items[0].unit_price.as_ref().unwrap().currency;
                prop_assert!(items.iter().any(|i| &i.unit_price.as_ref().unwrap().currency != first));
            }
            Err(e) => prop_assert!(false, "unexpected refusal {e:?}"),
        }
    }
}
