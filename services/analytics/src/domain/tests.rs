use chrono::{Duration, TimeZone};
use omnisaga_proto::v1::{OrderPlaced, OrderShipped, PaymentFailed, StockReserved};

use super::*;

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).unwrap() + Duration::milliseconds(ms)
}

#[test]
fn saga_steps_mark_their_stage_and_the_rest_marks_none() {
    assert_eq!(
        Stage::of(&Payload::OrderPlaced(OrderPlaced::default())),
        Some(Stage::Placed)
    );
    assert_eq!(
        Stage::of(&Payload::OrderShipped(OrderShipped::default())),
        Some(Stage::Shipped)
    );
    assert_eq!(
        Stage::of(&Payload::PaymentFailed(PaymentFailed::default())),
        Some(Stage::PaymentDeclined)
    );
    assert_eq!(Stage::of(&Payload::StockReserved(StockReserved::default())), None);
}

#[test]
fn stages_on_the_happy_path_are_kept_by_time_and_the_others_by_count_or_time() {
    assert_eq!(Stage::Paid.kept(), Kept::FirstTime("paid_at"));
    assert_eq!(Stage::PaymentDeclined.kept(), Kept::Count("payment_failures"));
    assert_eq!(Stage::Cancelled.kept(), Kept::FirstTime("cancelled_at"));
    let timed: Vec<_> = Stage::ALL.into_iter().filter(|s| s.is_timed()).collect();
    assert_eq!(
        timed,
        [
            Stage::Placed,
            Stage::Paid,
            Stage::ReadyForShipment,
            Stage::Shipped
        ]
    );
}

#[test]
fn a_later_stage_times_itself_from_the_placement() {
    let stages = Stages {
        placed: Some(at(0)),
        paid: Some(at(1_500)),
        ready: Some(at(4_000)),
        ..Stages::default()
    };
    assert_eq!(durations(Stage::Paid, &stages), vec![("placed_to_paid", 1.5)]);
    assert_eq!(
        durations(Stage::ReadyForShipment, &stages),
        vec![("placed_to_ready_for_shipment", 4.0)]
    );
}

#[test]
fn a_stage_before_the_placement_is_timed_when_the_placement_arrives() {
    let early = Stages {
        paid: Some(at(1_000)),
        shipped: Some(at(9_000)),
        ..Stages::default()
    };
    assert_eq!(durations(Stage::Shipped, &early), vec![]);
    let placed = Stages {
        placed: Some(at(0)),
        ..early
    };
    assert_eq!(
        durations(Stage::Placed, &placed),
        vec![("placed_to_paid", 1.0), ("placed_to_shipped", 9.0)]
    );
}

#[test]
fn a_cancellation_times_nothing() {
    let stages = Stages {
        placed: Some(at(0)),
        paid: Some(at(1_000)),
        ..Stages::default()
    };
    assert!(!Stage::Cancelled.is_timed());
    assert_eq!(durations(Stage::Cancelled, &stages), vec![]);
}

#[test]
fn a_stage_stamped_before_the_placement_by_another_clock_takes_no_time() {
    assert_eq!(seconds_between(at(2_000), at(1_250)), 0.0);
    assert_eq!(seconds_between(at(0), at(1)), 0.001);
}

#[test]
fn the_payment_success_share_is_unknown_before_the_first_answer() {
    assert_eq!(success_share(0, 0), None);
    assert_eq!(success_share(3, 1), Some(0.75));
}

#[test]
fn summary_durations_are_shown_to_a_tenth_of_a_millisecond() {
    assert_eq!(to_tenths(12.345), 12.3);
    assert_eq!(to_tenths(12.96), 13.0);
}

#[test]
fn a_batch_times_each_duration_whose_end_or_placement_it_set_once() {
    let all = Stages {
        placed: Some(at(0)),
        paid: Some(at(1000)),
        ready: Some(at(3000)),
        shipped: None,
    };
    let labels = |set: &dyn Fn(Stage) -> bool| -> Vec<&str> {
        completed(&all, set).into_iter().map(|d| d.0).collect()
    };
    assert_eq!(labels(&|s| s == Stage::Paid), ["placed_to_paid"]);
    assert_eq!(
        labels(&|s| matches!(s, Stage::Placed | Stage::Paid)),
        ["placed_to_paid", "placed_to_ready_for_shipment"],
        "the placement times what came before it, and the payment with it is timed once"
    );
    assert!(labels(&|_| false).is_empty());
    assert!(labels(&|s| s == Stage::Shipped).is_empty(), "not reached");
}
