//! Each invariant on a planted counterexample: the bug it guards against,
//! as the observations would show it, must make it fail; the same
//! observations without the bug must pass.

use super::{delivery, orders, topics, Verdict};
use crate::{
    load::{Outcome, Placement},
    observe::{Applied, Observations, Order, Payment, Published, Record},
};

fn placement(customer: &str, key: &str, outcome: Outcome) -> Placement {
    Placement {
        customer: customer.into(),
        key: key.into(),
        sku: "SKU-MUG".into(),
        quantity: 1,
        token: "tok_visa".into(),
        at: 0.0,
        outcome,
        cancel: None,
    }
}

fn accepted(id: &str) -> Outcome {
    Outcome::Accepted {
        order_id: id.into(),
        trace_id: String::new(),
    }
}

fn order(customer: &str, status: &str, total: i64) -> Order {
    Order {
        customer: customer.into(),
        status: status.into(),
        total: Some(total),
    }
}

fn fails(v: &Verdict, containing: &str) {
    assert!(!v.holds, "{} held: {v:?}", v.id);
    assert!(
        v.counterexamples.iter().any(|c| c.contains(containing)),
        "{} failed without '{containing}': {:?}",
        v.id,
        v.counterexamples
    );
}

fn holds(v: &Verdict) {
    assert!(v.holds, "{} failed: {:?}", v.id, v.counterexamples);
}

/// One customer's two placements: `k1` answered with order `a`, `k2`
/// unanswered (it made `b` all the same).
fn two_keys() -> (Vec<Placement>, Observations) {
    let history = vec![
        placement("c", "k1", accepted("a")),
        placement(
            "c",
            "k2",
            Outcome::Unknown {
                error: "answered 503".into(),
            },
        ),
    ];
    let mut seen = Observations::default();
    seen.orders.insert("a".into(), order("c", "SHIPPED", 500));
    seen.orders.insert("b".into(), order("c", "SHIPPED", 500));
    seen.keys.insert(("c".into(), "k1".into()), "a".into());
    seen.keys.insert(("c".into(), "k2".into()), "b".into());
    (history, seen)
}

#[test]
fn i2_fails_on_two_orders_for_one_key_and_takes_an_unanswered_one_as_maybe_applied() {
    let (mut history, mut seen) = two_keys();
    // A third key, unanswered, that made nothing.
    history.push(placement(
        "c",
        "k3",
        Outcome::Unknown {
            error: "no answer".into(),
        },
    ));
    holds(&orders::idempotency(&history, &seen));
    // A second order made for k1 (its key row holds the first): three
    // orders from three keys, which judged per customer passed.
    seen.orders.insert("a2".into(), order("c", "SHIPPED", 500));
    fails(
        &orders::idempotency(&history, &seen),
        "a2 (c): an order no Idempotency-Key made",
    );
    // The retry of k1 answered with an order other than the one it holds.
    let (mut history, seen) = two_keys();
    history[0].outcome = accepted("b");
    fails(&orders::idempotency(&history, &seen), "key k1: answered b");
    // A refusal that made an order.
    let (mut history, seen) = two_keys();
    history[1].outcome = Outcome::Refused { status: 422 };
    fails(
        &orders::idempotency(&history, &seen),
        "key k2: refused (422), yet made b",
    );
}

#[test]
fn i1_judges_the_orders_unanswered_placements_made() {
    let (history, mut seen) = two_keys();
    holds(&orders::terminal_states(&history, &seen));
    seen.orders.get_mut("b").unwrap().status = "PAID".into();
    fails(&orders::terminal_states(&history, &seen), "b: PAID");
}

fn authorised(order: &str, payment: &str, amount: i64) -> Payment {
    Payment::Authorised {
        order_id: order.into(),
        payment_id: payment.into(),
        amount,
    }
}

#[test]
fn i3_fails_on_a_double_authorisation_and_a_shipped_order_without_its_total() {
    let mut seen = Observations::default();
    seen.orders.insert("a".into(), order("c", "SHIPPED", 500));
    seen.payments.push(authorised("a", "p1", 500));
    seen.ledger_held.insert("p1".into());
    holds(&orders::one_authorisation(&seen));
    let mut twice = seen.clone();
    twice.payments.push(authorised("a", "p2", 500));
    twice.ledger_held.insert("p2".into());
    fails(&orders::one_authorisation(&twice), "a: 2 authorisations");
    fails(&orders::one_authorisation(&twice), "a: shipped with 2 standing");
    let mut short = seen.clone();
    short.payments[0] = authorised("a", "p1", 400);
    fails(
        &orders::one_authorisation(&short),
        "authorisation of 400, its total is Some(500)",
    );
    let mut none = seen;
    none.payments.clear();
    none.ledger_held.clear();
    fails(&orders::one_authorisation(&none), "a: shipped with 0 standing");
}

#[test]
fn i5_fails_on_a_message_sent_twice() {
    let mut seen = Observations::default();
    seen.orders.insert("a".into(), order("c", "SHIPPED", 500));
    seen.messages.push(("a".into(), "shipped".into(), true));
    seen.sent.push(("a".into(), "shipped".into()));
    holds(&delivery::one_message(&seen));
    // The dispatcher sent the one queued message twice.
    seen.sent.push(("a".into(), "shipped".into()));
    fails(&delivery::one_message(&seen), "a: 'shipped' sent 2 times");
}

/// A channel that received `order`'s `(message id, template)` in this order.
fn channel(order: &str, received: &[(&str, &str)]) -> omnisaga_stack::webhook_sink::Receipts {
    let mut receipts = omnisaga_stack::webhook_sink::Receipts::default();
    for (id, template) in received {
        *receipts.per_message.entry(id.to_string()).or_default() += 1;
        receipts
            .per_order
            .entry(order.into())
            .or_default()
            .push((id.to_string(), template.to_string()));
    }
    receipts
}

#[test]
fn i5_fails_on_a_message_recorded_sent_that_never_reached_the_channel() {
    let mut seen = Observations::default();
    seen.orders.insert("a".into(), order("c", "CANCELLED", 500));
    seen.messages.push(("a".into(), "order_created".into(), true));
    seen.sent.push(("a".into(), "order_created".into()));
    seen.sent_ids.insert("m1".into());
    seen.channel = Some(channel("a", &[("m1", "order_created"), ("m1", "order_created")]));
    // Received twice under one id: a resend, allowed.
    holds(&delivery::one_message(&seen));
    seen.channel = Some(channel("a", &[]));
    fails(
        &delivery::one_message(&seen),
        "message m1: recorded sent, never reached",
    );
}

#[test]
fn i5_fails_on_an_order_whose_messages_reached_the_channel_out_of_the_sagas_order() {
    let mut seen = Observations::default();
    let in_order = [
        ("m1", "order_created"),
        ("m2", "payment_failed"),
        ("m3", "payment_confirmed"),
        ("m4", "ready_for_shipment"),
        ("m5", "shipped"),
        // A resend of an earlier message after a crash: its first receipt counts.
        ("m2", "payment_failed"),
    ];
    seen.channel = Some(channel("a", &in_order));
    holds(&delivery::one_message(&seen));
    seen.channel = Some(channel(
        "a",
        &[
            ("m1", "order_created"),
            ("m5", "shipped"),
            ("m4", "ready_for_shipment"),
        ],
    ));
    fails(
        &delivery::one_message(&seen),
        "a: 'ready_for_shipment' reached the channel after 'shipped'",
    );
    seen.channel = Some(channel(
        "a",
        &[("m3", "payment_confirmed"), ("m1", "order_created")],
    ));
    fails(
        &delivery::one_message(&seen),
        "a: 'payment_confirmed' reached the channel before 'order_created'",
    );
}

fn applied(offset: i64, seen: u64) -> Applied {
    Applied {
        service: "payment".into(),
        consumer: "payment".into(),
        topic: "orders.v1".into(),
        partition: 3,
        offset,
        seen,
    }
}

#[test]
fn i6_fails_when_a_later_offset_committed_first() {
    let mut seen = Observations::default();
    seen.streams.push(("order".into(), "order-a".into(), 3, 1, 3));
    // Offsets 4 and 5 in one batch, 6 later: in order.
    seen.applied = vec![applied(4, 1), applied(5, 1), applied(6, 2)];
    holds(&delivery::streams_in_order(&seen));
    // 6's transaction began after 4's and committed before it: seen first.
    seen.applied = vec![applied(4, 3), applied(5, 3), applied(6, 2)];
    fails(
        &delivery::streams_in_order(&seen),
        "committed orders.v1[3]@6 (poll 2) before @4 (poll 3)",
    );
    seen.applied.clear();
    seen.streams.push(("payment".into(), "payment-a".into(), 2, 1, 3));
    fails(
        &delivery::streams_in_order(&seen),
        "payment-a: 2 events, versions 1..3",
    );
}

#[test]
fn i6_leaves_out_a_dead_letter_applied_when_an_operator_resolved_it() {
    // 4 was dead-lettered; 5 and 6 went on; 4 was replayed later.
    let mut seen = Observations {
        applied: vec![applied(4, 9), applied(5, 1), applied(6, 2)],
        ..Default::default()
    };
    fails(&delivery::streams_in_order(&seen), "committed orders.v1[3]@5");
    seen.records.push(Record {
        dead_lettered: Some(("payment".into(), "orders.v1".into(), 3, 4)),
        ..record("orders.v1.dlq", 0, Some("e4"))
    });
    holds(&delivery::streams_in_order(&seen));
}

#[test]
fn i7_fails_on_an_order_left_parked_and_not_on_another_key() {
    let mut seen = Observations::default();
    seen.orders.insert("a".into(), Default::default());
    seen.parked.push(("warehouse".into(), "poison-key".into()));
    holds(&delivery::queues_empty(&seen));
    seen.parked.push(("order".into(), "a".into()));
    fails(
        &delivery::queues_empty(&seen),
        "a: parked at order behind a dead letter",
    );
}

fn published(topic: &str, event: &str, event_type: &str) -> Published {
    Published {
        owner: "order".into(),
        topic: topic.into(),
        event_id: event.into(),
        event_type: event_type.into(),
        order_id: "a".into(),
    }
}

#[test]
fn i7_fails_on_an_event_a_consumer_subscribes_to_and_never_applied() {
    let mut seen = Observations::default();
    seen.published.push(published("orders.v1", "e1", "OrderPlaced"));
    seen.published
        .push(published("orders.v1", "e2", "OrderCancelled"));
    for service in ["payment", "warehouse", "notification", "analytics"] {
        seen.inboxes
            .entry(service.into())
            .or_default()
            .insert("e1".into());
        seen.inboxes
            .entry(service.into())
            .or_default()
            .insert("e2".into());
    }
    holds(&delivery::queues_empty(&seen));
    // Payment committed its offset of the only OrderCancelled before its
    // transaction and died between: it never handled a cancellation, so
    // judging only the types it handled passed this.
    seen.inboxes.get_mut("payment").unwrap().remove("e2");
    fails(
        &delivery::queues_empty(&seen),
        "OrderCancelled e2 of a: not in payment's inbox",
    );
    // A type payment does not subscribe to is not expected in its inbox.
    let mut seen = Observations::default();
    seen.published
        .push(published("warehouse.v1", "e3", "PickTaskCreated"));
    for service in ["order", "notification", "analytics"] {
        seen.inboxes
            .entry(service.into())
            .or_default()
            .insert("e3".into());
    }
    holds(&delivery::queues_empty(&seen));
}

fn record(topic: &str, offset: i64, event: Option<&str>) -> Record {
    Record {
        topic: topic.into(),
        partition: 0,
        offset,
        key: "a".into(),
        event_id: event.map(Into::into),
        poison: false,
        dead_lettered: None,
    }
}

/// Three events of order `a`'s stream on `orders.v1`, versions 1 to 3, the
/// second published twice (allowed), and a poison record.
fn three_events() -> Observations {
    let mut seen = Observations::default();
    for (n, event) in ["e1", "e2", "e3"].iter().enumerate() {
        seen.published.push(published("orders.v1", event, "OrderPlaced"));
        seen.stored.insert(
            ("order".into(), (*event).into()),
            ("order-a".into(), n as i64 + 1),
        );
    }
    seen.records = vec![
        record("orders.v1", 0, Some("e1")),
        record("orders.v1", 1, Some("e2")),
        record("orders.v1", 2, Some("e2")),
        record("orders.v1", 3, Some("e3")),
        Record {
            poison: true,
            ..record("orders.v1", 4, None)
        },
    ];
    seen
}

#[test]
fn i10_counts_duplicates_and_fails_on_lost_phantom_and_reordered_records() {
    let seen = three_events();
    let (verdict, read) = topics::topics_read(&seen);
    holds(&verdict);
    assert_eq!(
        (read.records, read.events, read.duplicates, read.poison),
        (5, 3, 1, 1)
    );
    assert!((read.duplicate_rate - 0.25).abs() < 1e-9);
    // An outbox row never on the topic.
    let mut lost = three_events();
    lost.published
        .push(published("orders.v1", "e4", "OrderCancelled"));
    let (verdict, read) = topics::topics_read(&lost);
    fails(&verdict, "e4 of a: in order's outbox, never on orders.v1 (lost)");
    assert_eq!(read.lost, 1);
    // A record of no outbox, and one that is no envelope (and no poison).
    let mut phantom = three_events();
    phantom.records.push(record("orders.v1", 5, Some("e9")));
    phantom.records.push(record("orders.v1", 6, None));
    let (verdict, read) = topics::topics_read(&phantom);
    fails(&verdict, "event e9 of key a in no outbox (phantom)");
    assert_eq!(read.phantom, 2);
    // A relay that published the key's rows concurrently: version 3 went
    // out before version 2.
    let mut reordered = three_events();
    reordered.records[1].event_id = Some("e3".into());
    reordered.records[2].event_id = Some("e2".into());
    reordered.records[3].event_id = Some("e3".into());
    let (verdict, read) = topics::topics_read(&reordered);
    fails(&verdict, "key a has order-a version 2 after version 3");
    assert_eq!(read.reordered_keys, 1);
    // A dead letter must be a copy of a record of its source topic.
    let mut parked = three_events();
    parked.records.push(record("orders.v1.dlq", 0, Some("e9")));
    fails(
        &topics::topics_read(&parked).0,
        "a dead letter of no record on orders.v1",
    );
}
