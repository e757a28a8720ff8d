//! Properties of the payment aggregate over arbitrary command sequences:
//! requests redelivered and out of order, the provider answering anything,
//! cancellations and the warehouse's word at any time. An order is charged
//! at most once, never after it is cancelled or nothing of it ships, and an
//! authorisation is voided at most once, only when it stands.

use proptest::prelude::*;

use super::*;

const ORDER_ID: &str = "o-1";

fn amount() -> Money {
    Money {
        minor_units: 1999,
        currency: "EUR".into(),
    }
}

fn answer() -> impl Strategy<Value = ProviderAnswer> {
    prop_oneof![
        Just(ProviderAnswer::Approved),
        "[a-z_]{1,12}".prop_map(ProviderAnswer::Declined),
        Just(ProviderAnswer::Unavailable),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::Placed { amount: amount() }),
        (0u32..6).prop_map(|attempt| Request::Retry { attempt }),
    ]
}

/// What the warehouse may say about the order, and events that void nothing.
fn void_fact() -> impl Strategy<Value = Event> {
    let id = || ORDER_ID.to_owned();
    prop_oneof![
        Just(Event::StockReleased(StockReleased {
            order_id: id(),
            ..Default::default()
        })),
        Just(Event::StockUnavailable(StockUnavailable {
            order_id: id(),
            ..Default::default()
        })),
        Just(Event::OrderCancelled(OrderCancelled::default())),
        Just(Event::PaymentVoided(PaymentVoided::default())),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        4 => (request(), answer()).prop_map(|(request, answer)| Command::Authorize {
            order_id: ORDER_ID.into(),
            request,
            answer,
        }),
        1 => Just(Command::Cancel(OrderCancelled {
            order_id: ORDER_ID.into(),
            reason: "customer_request".into(),
        })),
        1 => void_fact().prop_map(|fact| Command::Void(Box::new(fact))),
    ]
}

/// The attempt number of a provider's answer.
fn attempt_of(event: &Event) -> Option<u32> {
    match event {
        Event::PaymentAuthorized(e) => Some(e.attempt),
        Event::PaymentFailed(e) => Some(e.attempt),
        _ => None,
    }
}

/// Checks one accepted decision against the state it was taken in.
fn check_decision(before: &Payment, cmd: &Command, decided: &[Event]) {
    match cmd {
        Command::Authorize { request, .. } => {
            let made = attempt(before, request).expect("decide accepts what `attempt` allows");
            let [answer] = decided else {
                panic!("one answer per attempt: {decided:?}")
            };
            assert_eq!(attempt_of(answer), Some(made.number));
            assert!(made.number > before.attempts, "an attempt is never made twice");
            assert!(!before.cancelled && !before.nothing_ships && before.authorized.is_none());
        }
        Command::Cancel(_) => assert!(matches!(decided, [Event::OrderCancelled(_)])),
        Command::Void(fact) => {
            assert_eq!(
                decided.first(),
                Some(fact.as_ref()),
                "the warehouse's fact comes first"
            );
            for void in &decided[1..] {
                let Event::PaymentVoided(v) = void else {
                    panic!("a void decides only a PaymentVoided: {void:?}")
                };
                assert_eq!(
                    Some(&v.payment_id),
                    before.authorized.as_ref(),
                    "voids the authorisation"
                );
                assert_eq!(v.amount, before.amount);
                assert!(!before.voided);
            }
        }
    }
    let own = decided.iter().filter(|e| publishes(e)).count();
    let facts = decided.len() - own;
    assert!(facts <= 1, "at most the one fact the command carried");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_command_sequence_charges_an_order_at_most_once(commands in prop::collection::vec(command(), 0..16)) {
        let mut history: Vec<Event> = Vec::new();
        let mut state = Payment::default();
        for cmd in commands {
            let allowed = match &cmd {
                Command::Authorize { request, .. } => Some(attempt(&state, request)),
                _ => None,
            };
            match decide(&state, cmd.clone()) {
                Ok(decided) => {
                    check_decision(&state, &cmd, &decided);
                    state = decided.iter().fold(state, evolve);
                    history.extend(decided);
                }
                Err(refusal) => {
                    if let Some(allowed) = allowed {
                        prop_assert_eq!(allowed, Err(refusal), "decide refuses what `attempt` refuses");
                    }
                }
            }
            prop_assert_eq!(&state, &history.iter().fold(Payment::default(), evolve));
        }
        let count = |name: &str| history.iter().filter(|e| e.name() == name).count();
        prop_assert!(count("PaymentAuthorized") <= 1, "authorised twice: {:?}", history);
        prop_assert!(count("PaymentVoided") <= count("PaymentAuthorized"));
        prop_assert!(count("OrderCancelled") <= 1);
        let numbers: Vec<u32> = history.iter().filter_map(attempt_of).collect();
        prop_assert!(numbers.windows(2).all(|w| w[0] < w[1]), "attempts rise: {:?}", numbers);
        // No charge after the order was cancelled or nothing of it ships.
        let stop = history.iter().position(|e| {
            matches!(e, Event::OrderCancelled(_) | Event::StockReleased(_) | Event::StockUnavailable(_))
        });
        if let Some(stop) = stop {
            prop_assert!(history[stop..].iter().all(|e| attempt_of(e).is_none()));
        }
        // A void comes after the authorisation, and only once the warehouse said nothing ships.
        if let Some(void) = history.iter().position(|e| matches!(e, Event::PaymentVoided(_))) {
            let authorized = history.iter().position(|e| matches!(e, Event::PaymentAuthorized(_)));
            prop_assert!(authorized.is_some_and(|a| a < void));
            prop_assert!(matches!(history[void - 1], Event::StockReleased(_) | Event::StockUnavailable(_)));
        }
    }
}
