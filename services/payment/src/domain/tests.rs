//! Every payment transition, given/when/then, impossible ones included.

use super::*;

use omnisaga_runtime::testing::decider;

fn given(history: &[Event]) -> decider::Given<PaymentAggregate> {
    decider::given(history)
}

fn total() -> Money {
    Money {
        minor_units: 1999,
        currency: "EUR".into(),
    }
}
fn authorize(request: Request, answer: ProviderAnswer) -> Command {
    Command::Authorize {
        order_id: "o-1".into(),
        request,
        answer,
    }
}
fn placed(answer: ProviderAnswer) -> Command {
    authorize(Request::Placed { amount: total() }, answer)
}
fn retry(attempt: u32, answer: ProviderAnswer) -> Command {
    authorize(Request::Retry { attempt }, answer)
}
fn approved() -> ProviderAnswer {
    ProviderAnswer::Approved
}
fn declined() -> ProviderAnswer {
    ProviderAnswer::Declined("card_declined".into())
}
fn authorized(attempt: u32) -> Event {
    Event::PaymentAuthorized(PaymentAuthorized {
        order_id: "o-1".into(),
        payment_id: payment_id("o-1", attempt),
        amount: Some(total()),
        attempt,
    })
}
fn failed(attempt: u32, reason: &str) -> Event {
    Event::PaymentFailed(PaymentFailed {
        order_id: "o-1".into(),
        payment_id: payment_id("o-1", attempt),
        amount: Some(total()),
        attempt,
        reason: reason.into(),
        retryable: true,
    })
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
fn void(fact: Event) -> Command {
    Command::Void(Box::new(fact))
}
fn stock_released() -> Event {
    Event::StockReleased(omnisaga_proto::v1::StockReleased {
        order_id: "o-1".into(),
        items: vec![],
    })
}
fn stock_unavailable() -> Event {
    Event::StockUnavailable(omnisaga_proto::v1::StockUnavailable {
        order_id: "o-1".into(),
        skus: vec!["SKU-MUG".into()],
    })
}
fn voided(attempt: u32) -> Event {
    Event::PaymentVoided(PaymentVoided {
        order_id: "o-1".into(),
        payment_id: payment_id("o-1", attempt),
        amount: Some(total()),
    })
}

#[test]
fn an_approved_first_attempt_authorizes_the_total() {
    let g = given(&[]).when(placed(approved())).then(&[authorized(1)]);
    assert_eq!(g.state().authorized.as_deref(), Some("pay-o-1-1"));
}

#[test]
fn a_decline_and_an_outage_fail_retryably_with_their_reason() {
    given(&[])
        .when(placed(declined()))
        .then(&[failed(1, "card_declined")]);
    given(&[])
        .when(placed(ProviderAnswer::Unavailable))
        .then(&[failed(1, "provider_unavailable")]);
}

#[test]
fn a_retry_after_a_failure_charges_the_same_amount_again() {
    given(&[])
        .when(placed(declined()))
        .then(&[failed(1, "card_declined")])
        .when(retry(2, ProviderAnswer::Unavailable))
        .then(&[failed(2, "provider_unavailable")])
        .when(retry(3, approved()))
        .then(&[authorized(3)]);
}

#[test]
fn the_attempt_a_request_makes_is_known_before_the_provider_is_asked() {
    let g = given(&[failed(1, "card_declined")]);
    assert_eq!(
        attempt(&g.state(), &Request::Retry { attempt: 2 }),
        Ok(Attempt {
            number: 2,
            amount: total()
        })
    );
    assert_eq!(
        attempt(&given(&[]).state(), &Request::Placed { amount: total() }).map(|a| a.number),
        Ok(1)
    );
}

#[test]
fn a_placement_seen_twice_is_not_charged_twice() {
    given(&[failed(1, "card_declined")])
        .when(placed(approved()))
        .refused(PaymentError::AttemptAlreadyMade(1));
}

#[test]
fn a_retry_with_a_stale_attempt_number_is_refused() {
    let g = given(&[failed(1, "card_declined"), failed(2, "card_declined")]);
    for stale in [1, 2] {
        g.when(retry(stale, approved()))
            .refused(PaymentError::AttemptAlreadyMade(stale));
    }
    g.when(retry(3, approved())).then(&[authorized(3)]);
}

#[test]
fn a_retry_before_any_attempt_has_no_amount_to_charge() {
    given(&[])
        .when(retry(2, approved()))
        .refused(PaymentError::NothingToRetry);
}

#[test]
fn an_authorized_order_is_never_authorized_twice() {
    let g = given(&[authorized(1)]);
    g.when(placed(approved()))
        .refused(PaymentError::AlreadyAuthorized);
    g.when(retry(2, approved()))
        .refused(PaymentError::AlreadyAuthorized);
}

#[test]
fn a_late_failure_after_the_authorization_changes_nothing() {
    let g = given(&[failed(1, "card_declined")])
        .when(retry(2, approved()))
        .then(&[authorized(2)]);
    let g = g
        .when(retry(3, ProviderAnswer::Unavailable))
        .refused(PaymentError::AlreadyAuthorized);
    assert_eq!(g.state().authorized.as_deref(), Some("pay-o-1-2"));
}

#[test]
fn a_cancelled_order_is_never_authorized() {
    given(&[cancelled()])
        .when(placed(approved()))
        .refused(PaymentError::OrderCancelled);
    let g = given(&[failed(1, "card_declined"), cancelled()]);
    g.when(retry(2, approved())).refused(PaymentError::OrderCancelled);
    g.when(placed(approved())).refused(PaymentError::OrderCancelled);
}

#[test]
fn a_cancellation_alone_voids_nothing_the_parcel_may_have_left() {
    given(&[authorized(1)]).when(cancel()).then(&[cancelled()]);
    given(&[failed(1, "card_declined")])
        .when(cancel())
        .then(&[cancelled()]);
    given(&[]).when(cancel()).then(&[cancelled()]);
}

#[test]
fn stock_released_for_a_cancelled_order_voids_the_authorization() {
    let g = given(&[failed(1, "card_declined"), authorized(2)])
        .when(cancel())
        .then(&[cancelled()])
        .when(void(stock_released()))
        .then(&[stock_released(), voided(2)]);
    g.when(retry(3, approved())).refused(PaymentError::OrderCancelled);
}

#[test]
fn unavailable_stock_voids_the_authorization_and_blocks_any_other() {
    let g = given(&[authorized(1)])
        .when(void(stock_unavailable()))
        .then(&[stock_unavailable(), voided(1)]);
    assert!(g.state().voided);
    // The warehouse's word arrived before the order's placement was handled.
    given(&[stock_unavailable()])
        .when(placed(approved()))
        .refused(PaymentError::NothingShips);
}

#[test]
fn with_nothing_authorized_the_warehouse_word_voids_nothing() {
    given(&[failed(1, "card_declined"), cancelled()])
        .when(void(stock_released()))
        .then(&[stock_released()]);
}

#[test]
fn a_cancel_and_a_void_are_recorded_once_and_void_once() {
    given(&[authorized(1)])
        .when(cancel())
        .then(&[cancelled()])
        .when(cancel())
        .refused(PaymentError::AlreadyCancelled)
        .when(void(stock_released()))
        .then(&[stock_released(), voided(1)])
        .when(void(stock_released()))
        .refused(PaymentError::AlreadyVoidable);
}

#[test]
fn only_the_warehouse_word_that_nothing_ships_voids() {
    given(&[authorized(1)])
        .when(void(authorized(1)))
        .refused(PaymentError::NotAVoid("PaymentAuthorized"));
}

#[test]
fn payment_publishes_its_own_events_and_only_records_the_facts_of_others() {
    assert!([authorized(1), failed(1, "x"), voided(1)].iter().all(publishes));
    assert!(![cancelled(), stock_released(), stock_unavailable()]
        .iter()
        .any(publishes));
}

#[test]
fn a_refused_attempt_never_recorded_may_hold_money_at_the_provider() {
    let placed = Request::Placed { amount: total() };
    let retry = |attempt| Request::Retry { attempt };
    let unrecorded = |history: &[Event], request: &Request| -> Option<u32> {
        let state = given(history).state();
        let refusal = attempt(&state, request).expect_err("the attempt is refused");
        unrecorded_attempt(&state, request, &refusal)
    };
    // Cancelled, or nothing ships, before the attempt was ever recorded: an
    // approval from a rolled-back try may stand.
    assert_eq!(unrecorded(&[cancelled()], &placed), Some(1));
    assert_eq!(unrecorded(&[stock_released()], &placed), Some(1));
    assert_eq!(
        unrecorded(&[failed(1, "card_declined"), cancelled()], &retry(2)),
        Some(2)
    );
    // Another attempt was approved and recorded: a second approval is voided too.
    assert_eq!(
        unrecorded(&[failed(1, "card_declined"), authorized(2)], &retry(3)),
        Some(3)
    );
    // An attempt recorded has a known answer, voided (or not) through the stream.
    assert_eq!(unrecorded(&[authorized(1), cancelled()], &placed), None);
    assert_eq!(unrecorded(&[failed(1, "card_declined")], &placed), None);
    assert_eq!(unrecorded(&[authorized(1)], &placed), None);
    // A retry of an order payment never saw asked nothing of the provider.
    assert_eq!(unrecorded(&[], &retry(2)), None);
}
