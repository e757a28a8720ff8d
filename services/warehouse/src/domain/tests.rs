//! Every fulfilment transition, given/when/then, impossible ones included.

use super::*;

use omnisaga_runtime::testing::decider;

fn given(history: &[Event]) -> decider::Given<FulfilmentAggregate> {
    decider::given(history)
}

fn items() -> Vec<LineItem> {
    vec![LineItem {
        sku: "A".into(),
        quantity: 2,
        ..Default::default()
    }]
}

fn reserve_with(short: &[&str]) -> Command {
    Command::Reserve {
        order_id: "o-1".into(),
        items: items(),
        short: short.iter().map(|s| s.to_string()).collect(),
        pick_task_id: "t-1".into(),
    }
}
fn reserve() -> Command {
    reserve_with(&[])
}
fn reserve_short() -> Command {
    reserve_with(&["A"])
}
fn reserved() -> [Event; 2] {
    [
        Event::StockReserved(StockReserved {
            order_id: "o-1".into(),
            items: items(),
        }),
        Event::PickTaskCreated(PickTaskCreated {
            order_id: "o-1".into(),
            pick_task_id: "t-1".into(),
            items: items(),
        }),
    ]
}
fn unavailable() -> Event {
    Event::StockUnavailable(StockUnavailable {
        order_id: "o-1".into(),
        skus: vec!["A".into()],
    })
}
fn authorization() -> PaymentAuthorized {
    PaymentAuthorized {
        order_id: "o-1".into(),
        payment_id: "pay-o-1-1".into(),
        amount: None,
        attempt: 1,
    }
}
fn release_for_picking() -> Command {
    Command::ReleaseForPicking(authorization())
}
fn paid() -> Event {
    Event::PaymentAuthorized(authorization())
}
fn cancellation() -> OrderCancelled {
    OrderCancelled {
        order_id: "o-1".into(),
        reason: "customer_request".into(),
    }
}
fn cancel() -> Command {
    Command::Cancel(cancellation())
}
fn cancelled() -> Event {
    Event::OrderCancelled(cancellation())
}
fn released() -> Event {
    Event::StockReleased(StockReleased {
        order_id: "o-1".into(),
        items: items(),
    })
}
fn pack_task(pick_task_id: &str) -> Command {
    Command::Pack {
        order_id: "o-1".into(),
        pick_task_id: pick_task_id.into(),
        parcels: 1,
    }
}
fn pack() -> Command {
    pack_task("t-1")
}
fn ready() -> Event {
    Event::OrderReadyForShipment(OrderReadyForShipment {
        order_id: "o-1".into(),
        pick_task_id: "t-1".into(),
        parcels: 1,
    })
}
fn ship() -> Command {
    Command::Ship {
        order_id: "o-1".into(),
        pick_task_id: "t-1".into(),
        carrier: "omnisaga-post".into(),
        tracking_number: "OSP1".into(),
        as_v1: false,
    }
}
fn parcel(tracking_number: &str) -> v2::Parcel {
    v2::Parcel {
        carrier: "omnisaga-post".into(),
        tracking_number: tracking_number.into(),
    }
}
fn shipped() -> Event {
    Event::OrderShipped(Shipped {
        shipment: v2::OrderShipped {
            order_id: "o-1".into(),
            parcels: vec![parcel("OSP1")],
        },
        as_v1: false,
    })
}

fn placed_and_paid() -> Vec<Event> {
    [reserved().to_vec(), vec![paid()]].concat()
}

#[test]
fn a_paid_order_is_reserved_picked_packed_and_shipped() {
    let g = given(&[]).when(reserve()).then(&reserved());
    assert!(!g.state().pickable(), "a task waits for payment");
    let g = g.when(release_for_picking()).then(&[paid()]);
    assert!(g.state().pickable());
    let g = g.when(pack()).then(&[ready()]);
    assert!(!g.state().pickable(), "packed: only shipping is left");
    g.when(ship()).then(&[shipped()]);
}

#[test]
fn short_stock_is_reported_and_nothing_is_reserved() {
    let g = given(&[]).when(reserve_short()).then(&[unavailable()]);
    assert_eq!(g.state().reserved, None);
    assert_eq!(g.state().pick_task_id, None);
}

#[test]
fn an_order_is_reserved_once() {
    given(&reserved())
        .when(reserve())
        .refused(FulfilmentError::AlreadyReserved);
    given(&[unavailable()])
        .when(reserve())
        .refused(FulfilmentError::StockWasUnavailable);
}

#[test]
fn a_cancelled_order_is_never_reserved() {
    given(&[cancelled()])
        .when(reserve())
        .refused(FulfilmentError::OrderCancelled);
}

#[test]
fn a_payment_seen_before_the_order_makes_its_task_workable_at_once() {
    let g = given(&[]).when(release_for_picking()).then(&[paid()]);
    let g = g.when(reserve()).then(&reserved());
    assert!(g.state().pickable());
}

#[test]
fn a_payment_is_recorded_once() {
    given(&placed_and_paid())
        .when(release_for_picking())
        .refused(FulfilmentError::AlreadyPaid);
}

#[test]
fn a_payment_for_a_cancelled_order_starts_no_pick() {
    for history in [
        vec![cancelled()],
        [reserved().to_vec(), vec![cancelled(), released()]].concat(),
    ] {
        let g = given(&history)
            .when(release_for_picking())
            .refused(FulfilmentError::OrderCancelled);
        assert!(!g.state().pickable());
    }
}

#[test]
fn a_payment_for_unavailable_stock_starts_no_pick() {
    given(&[unavailable()])
        .when(release_for_picking())
        .refused(FulfilmentError::StockWasUnavailable);
}

#[test]
fn an_unpaid_order_is_not_picked() {
    given(&reserved()).when(pack()).refused(FulfilmentError::NotPaid);
}

#[test]
fn only_the_orders_own_pick_task_is_worked() {
    given(&placed_and_paid())
        .when(pack_task("t-other"))
        .refused(FulfilmentError::UnknownPickTask("t-other".into()));
    given(&[paid()])
        .when(pack())
        .refused(FulfilmentError::UnknownPickTask("t-1".into()));
    given(&[unavailable()])
        .when(ship())
        .refused(FulfilmentError::UnknownPickTask("t-1".into()));
}

#[test]
fn an_order_is_packed_once_and_shipped_once() {
    let g = given(&placed_and_paid()).when(pack()).then(&[ready()]);
    g.when(pack()).refused(FulfilmentError::AlreadyPacked);
    let g = g.when(ship()).then(&[shipped()]);
    g.when(ship()).refused(FulfilmentError::AlreadyShipped);
    g.when(pack()).refused(FulfilmentError::AlreadyShipped);
}

#[test]
fn each_parcel_ships_with_its_own_tracking_number() {
    let packed_in_two = Event::OrderReadyForShipment(OrderReadyForShipment {
        order_id: "o-1".into(),
        pick_task_id: "t-1".into(),
        parcels: 2,
    });
    let history = [placed_and_paid(), vec![packed_in_two]].concat();
    given(&history).when(ship()).then(&[Event::OrderShipped(Shipped {
        shipment: v2::OrderShipped {
            order_id: "o-1".into(),
            parcels: vec![parcel("OSP1-1"), parcel("OSP1-2")],
        },
        as_v1: false,
    })]);
}

#[test]
fn an_order_is_not_shipped_before_it_is_packed() {
    given(&placed_and_paid())
        .when(ship())
        .refused(FulfilmentError::NotPacked);
}

#[test]
fn nothing_is_picked_packed_or_shipped_after_a_cancel() {
    let cancelled_at = |history: Vec<Event>| given(&history).when(cancel()).then(&[cancelled(), released()]);
    let unpaid = cancelled_at(reserved().to_vec());
    unpaid.when(pack()).refused(FulfilmentError::OrderCancelled);
    let paid = cancelled_at(placed_and_paid());
    paid.when(pack()).refused(FulfilmentError::OrderCancelled);
    let packed = cancelled_at([placed_and_paid(), vec![ready()]].concat());
    let g = packed.when(ship()).refused(FulfilmentError::OrderCancelled);
    assert!(!g.state().shipped);
}

#[test]
fn a_cancel_releases_what_is_reserved_until_it_ships() {
    given(&reserved()).when(cancel()).then(&[cancelled(), released()]);
    given(&[placed_and_paid(), vec![ready()]].concat())
        .when(cancel())
        .then(&[cancelled(), released()]);
}

#[test]
fn a_cancel_after_shipping_releases_nothing() {
    given(&[placed_and_paid(), vec![ready(), shipped()]].concat())
        .when(cancel())
        .then(&[cancelled()]);
}

#[test]
fn a_cancel_with_nothing_reserved_only_records_it() {
    given(&[]).when(cancel()).then(&[cancelled()]);
    given(&[unavailable()]).when(cancel()).then(&[cancelled()]);
}

#[test]
fn a_cancel_is_recorded_once_and_releases_once() {
    let g = given(&reserved()).when(cancel()).then(&[cancelled(), released()]);
    g.when(cancel()).refused(FulfilmentError::AlreadyCancelled);
}

#[test]
fn the_warehouse_publishes_its_own_events_and_only_records_the_others() {
    let own = [
        reserved().to_vec(),
        vec![unavailable(), released(), ready(), shipped()],
    ]
    .concat();
    assert!(own.iter().all(publishes));
    assert!(![paid(), cancelled()].iter().any(publishes));
}
