//! Properties of the fulfilment aggregate over arbitrary command sequences:
//! reservations, payments, cancellations and the pick task's steps arrive in
//! any order and any number. The shelf is modelled as the warehouse's store
//! keeps it (a reservation takes the items when every SKU is covered, a
//! release puts them back, a shipment takes them off the shelf), and the
//! stock never goes negative, a reservation goes back at most once and
//! never after it shipped, and nothing is packed or shipped unpaid or after a
//! cancellation.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const ORDER_ID: &str = "o-1";
const PICK_TASK: &str = "t-1";
const SKUS: [&str; 3] = ["A", "B", "C"];

/// Up to three lines of distinct SKUs.
fn items() -> impl Strategy<Value = Vec<LineItem>> {
    prop::sample::subsequence(SKUS.to_vec(), 1..=3).prop_flat_map(|skus| {
        let n = skus.len();
        prop::collection::vec(1u32..=5, n).prop_map(move |quantities| {
            skus.iter()
                .zip(quantities)
                .map(|(sku, quantity)| LineItem {
                    sku: (*sku).into(),
                    quantity,
                    ..Default::default()
                })
                .collect()
        })
    })
}

fn pick_task() -> impl Strategy<Value = String> {
    prop::sample::select(vec![PICK_TASK, "t-2"]).prop_map(str::to_owned)
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        // `short` is filled in from the shelf when the command is decided.
        2 => items().prop_map(|items| Command::Reserve {
            order_id: ORDER_ID.into(),
            items,
            short: Vec::new(),
            pick_task_id: PICK_TASK.into(),
        }),
        1 => Just(Command::ReleaseForPicking(PaymentAuthorized {
            order_id: ORDER_ID.into(),
            attempt: 1,
            ..Default::default()
        })),
        1 => Just(Command::Cancel(OrderCancelled {
            order_id: ORDER_ID.into(),
            reason: "customer_request".into(),
        })),
        2 => (pick_task(), 1u32..4).prop_map(|(pick_task_id, parcels)| Command::Pack {
            order_id: ORDER_ID.into(),
            pick_task_id,
            parcels,
        }),
        2 => (pick_task(), any::<bool>()).prop_map(|(pick_task_id, as_v1)| Command::Ship {
            order_id: ORDER_ID.into(),
            pick_task_id,
            carrier: "DHL".into(),
            tracking_number: "JD0001".into(),
            as_v1,
        }),
    ]
}

/// The shelf of each SKU: on hand, and how much of it reservations hold.
#[derive(Debug, Clone, Default)]
struct Shelf {
    on_hand: BTreeMap<String, i64>,
    reserved: BTreeMap<String, i64>,
}

impl Shelf {
    fn available(&self, sku: &str) -> i64 {
        self.on_hand.get(sku).copied().unwrap_or(0) - self.reserved.get(sku).copied().unwrap_or(0)
    }
    /// The SKUs of `items` the shelf cannot cover, as the store reports them.
    fn short(&self, items: &[LineItem]) -> Vec<String> {
        items
            .iter()
            .filter(|i| self.available(&i.sku) < i64::from(i.quantity))
            .map(|i| i.sku.clone())
            .collect()
    }
    /// What an event of the order's stream does to the shelf.
    fn apply(&mut self, event: &Event, held: &[LineItem]) {
        let add = |map: &mut BTreeMap<String, i64>, items: &[LineItem], sign: i64| {
            for i in items {
                *map.entry(i.sku.clone()).or_default() += sign * i64::from(i.quantity);
            }
        };
        match event {
            Event::StockReserved(e) => add(&mut self.reserved, &e.items, 1),
            Event::StockReleased(e) => add(&mut self.reserved, &e.items, -1),
            Event::OrderShipped(_) => {
                add(&mut self.reserved, held, -1);
                add(&mut self.on_hand, held, -1);
            }
            _ => {}
        }
    }
    fn never_negative(&self) -> bool {
        self.on_hand
            .values()
            .chain(self.reserved.values())
            .all(|q| *q >= 0)
            && SKUS.iter().all(|s| self.available(s) >= 0)
    }
}

/// Checks one accepted decision against the state it was taken in.
fn check_decision(before: &Fulfilment, decided: &[Event]) {
    for event in decided {
        match event {
            Event::StockReserved(_) | Event::StockUnavailable(_) => {
                assert!(before.reserved.is_none() && !before.unavailable && !before.cancelled);
            }
            Event::StockReleased(e) => {
                assert_eq!(
                    Some(&e.items),
                    before.reserved.as_ref(),
                    "what was reserved goes back"
                );
                assert!(!before.shipped && !before.released);
            }
            Event::OrderReadyForShipment(_) => {
                assert!(before.paid && before.pick_task_id.is_some() && !before.cancelled && !before.ready);
            }
            Event::OrderShipped(_) => assert!(before.ready && !before.cancelled && !before.shipped),
            Event::PaymentAuthorized(_) => assert!(!before.paid && !before.cancelled),
            Event::OrderCancelled(_) => assert!(!before.cancelled),
            Event::PickTaskCreated(_) => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_command_sequence_keeps_the_stock_and_the_order_consistent(
        on_hand in prop::collection::vec(0i64..8, SKUS.len()),
        commands in prop::collection::vec(command(), 0..16),
    ) {
        let mut shelf = Shelf {
            on_hand: SKUS.iter().map(|s| s.to_string()).zip(on_hand).collect(),
            ..Shelf::default()
        };
        let mut history: Vec<Event> = Vec::new();
        let mut state = Fulfilment::default();
        for mut cmd in commands {
            if let Command::Reserve { items, short, .. } = &mut cmd {
                *short = shelf.short(items);
            }
            if let Ok(decided) = decide(&state, cmd) {
                check_decision(&state, &decided);
                for event in &decided {
                    shelf.apply(event, state.reserved.as_deref().unwrap_or_default());
                    state = evolve(state, event);
                }
                history.extend(decided);
            }
            prop_assert!(shelf.never_negative(), "{:?} after {:?}", shelf, history);
            prop_assert_eq!(&state, &history.iter().fold(Fulfilment::default(), evolve));
            prop_assert!(!state.pickable() || (state.paid && !state.cancelled && !state.ready));
        }
        let count = |f: fn(&Event) -> bool| history.iter().filter(|e| f(e)).count();
        prop_assert!(count(|e| matches!(e, Event::StockReserved(_))) + count(|e| matches!(e, Event::StockUnavailable(_))) <= 1);
        prop_assert!(count(|e| matches!(e, Event::StockReleased(_))) <= 1);
        prop_assert!(count(|e| matches!(e, Event::OrderShipped(_))) <= 1);
        prop_assert!(
            !(state.shipped && state.released),
            "stock that shipped never goes back: {:?}",
            history
        );
        if let Some(cancelled) = history.iter().position(|e| matches!(e, Event::OrderCancelled(_))) {
            prop_assert!(history[cancelled..]
                .iter()
                .all(|e| !matches!(e, Event::OrderReadyForShipment(_) | Event::OrderShipped(_) | Event::StockReserved(_))));
        }
        // Whatever the order holds is on the shelf, and nothing else is reserved.
        let held = if state.released || state.shipped { None } else { state.reserved.as_ref() };
        for sku in SKUS {
            let holds: i64 = held.into_iter().flatten().filter(|i| i.sku == sku).map(|i| i64::from(i.quantity)).sum();
            prop_assert_eq!(shelf.reserved.get(sku).copied().unwrap_or(0), holds);
        }
    }
}
