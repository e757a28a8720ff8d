//! The deadlines of the stages that wait on another service: the order is
//! escalated once per stage, only while it waits there, and a fact that
//! arrives after the escalation moves it on as usual.

use omnisaga_proto::v1::{OrderReadyForShipment, PaymentAuthorized};
use omnisaga_runtime::testing::decider;

use super::*;

fn placed() -> Event {
    decide(
        None,
        Command::Place(PlaceOrder {
            order_id: "o-1".into(),
            order_number: "OS-100001".into(),
            customer_id: "c-1".into(),
            channel: Channel::Web,
            items: vec![LineItem {
                sku: "A".into(),
                name: "A".into(),
                quantity: 1,
                unit_price: Some(Money {
                    minor_units: 500,
                    currency: "EUR".into(),
                }),
            }],
            shipping_address: Address::default(),
            payment_method_token: "tok_visa".into(),
            estimated_delivery: "2026-11-27".into(),
        }),
    )
    .unwrap()
    .remove(0)
}

fn authorized() -> Event {
    Event::PaymentAuthorized(PaymentAuthorized {
        attempt: 1,
        ..Default::default()
    })
}

fn ready() -> Event {
    Event::OrderReadyForShipment(OrderReadyForShipment::default())
}

fn escalate(stage: Status) -> Command {
    Command::Escalate {
        stage,
        waited_ms: 1000,
    }
}

fn escalated(stage: Status) -> Event {
    Event::OrderEscalated(OrderEscalated {
        order_id: "o-1".into(),
        status: stage.as_str().into(),
        waited_ms: 1000,
    })
}

type Given = decider::Given<OrderAggregate>;

fn given(history: &[Event]) -> Given {
    decider::given(history)
}

#[test]
fn an_order_waiting_in_a_stage_past_its_deadline_is_escalated_once_and_stays_there() {
    for (history, stage) in [
        (vec![placed()], Status::Placed),
        (vec![placed(), authorized()], Status::Paid),
        (vec![placed(), authorized(), ready()], Status::ReadyForShipment),
    ] {
        let when = given(&history).when(escalate(stage));
        when.then(&[escalated(stage)]);
        let g = given(&history).when(escalate(stage)).accepted();
        let order = g.state().unwrap();
        assert_eq!((order.status, order.escalated), (stage, Some(stage)));
        g.when(escalate(stage))
            .refused(OrderError::AlreadyEscalated(stage.as_str()));
    }
}

#[test]
fn an_order_that_moved_on_before_its_deadline_fired_is_not_escalated() {
    // The payment answer was recorded first: nothing to escalate in PLACED.
    given(&[placed(), authorized()])
        .when(escalate(Status::Placed))
        .refused(OrderError::NotWaitingIn("PLACED", "PAID"));
    given(&[placed(), Event::OrderCancelled(OrderCancelled::default())])
        .when(escalate(Status::Paid))
        .refused(OrderError::NotWaitingIn("PAID", "CANCELLED"));
    // Awaiting payment has its own deadline, which cancels.
    let declined = Event::PaymentFailed(PaymentFailed {
        attempt: 1,
        ..Default::default()
    });
    given(&[placed(), declined])
        .when(escalate(Status::AwaitingPayment))
        .refused(OrderError::NotWaitingIn("AWAITING_PAYMENT", "AWAITING_PAYMENT"));
}

#[test]
fn news_after_an_escalation_moves_the_order_on_and_its_next_stage_may_escalate_again() {
    let g = given(&[placed(), escalated(Status::Placed)]);
    let when = g.when(Command::Record(authorized()));
    assert_eq!(when.decided(), &[authorized()], "recorded, no reaction");
    let g = when.accepted();
    assert_eq!(g.state().unwrap().status, Status::Paid);
    g.when(escalate(Status::Paid)).then(&[escalated(Status::Paid)]);
}

#[test]
fn every_status_reads_back_from_its_name() {
    for s in [
        Status::Placed,
        Status::AwaitingPayment,
        Status::Paid,
        Status::ReadyForShipment,
        Status::Shipped,
        Status::Cancelled,
    ] {
        assert_eq!(Status::parse(s.as_str()), Some(s));
    }
    assert_eq!(Status::parse("ESCALATED"), None);
}
