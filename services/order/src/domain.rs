//! The order aggregate, pure: `decide` turns a command into events and
//! `evolve` folds an event into the state. No I/O, no clock, no ids: they
//! come in with the command. The order's stream holds its own [`Event`]s and
//! the facts of payment and the warehouse it records (its timeline);
//! `crate::wire` maps them to and from the `omnisaga.v1` payloads.

use omnisaga_proto::{
    v1::{
        Address, Channel, Customer, LineItem, Money, OrderCancelled, OrderEscalated, OrderPlaced,
        OrderReadyForShipment, PaymentAuthorized, PaymentDelayed, PaymentFailed, PaymentRetryRequested,
        PaymentVoided, PickTaskCreated, StockReleased, StockReserved, StockUnavailable,
    },
    v2::OrderShipped,
};
use omnisaga_runtime::aggregate::Decider;

/// The API's name of a stored channel.
pub fn channel_name(c: i32) -> &'static str {
    match Channel::try_from(c).unwrap_or(Channel::Unspecified) {
        Channel::Mobile => "mobile",
        Channel::Web => "web",
        Channel::Pos => "pos",
        Channel::Marketplace => "marketplace",
        Channel::Unspecified => "unspecified",
    }
}

#[cfg(test)]
mod escalation_tests;
#[cfg(test)]
mod proptests;

/// What an order's stream holds. Unboxed like the protobuf oneof it
/// mirrors: an event is built once and moved, so the placement's size costs
/// nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    // The order's own events.
    OrderPlaced(OrderPlaced),
    OrderCancelled(OrderCancelled),
    PaymentRetryRequested(PaymentRetryRequested),
    PaymentDelayed(PaymentDelayed),
    OrderEscalated(OrderEscalated),
    // Payment's facts.
    PaymentAuthorized(PaymentAuthorized),
    PaymentFailed(PaymentFailed),
    PaymentVoided(PaymentVoided),
    // The warehouse's facts.
    StockReserved(StockReserved),
    StockUnavailable(StockUnavailable),
    StockReleased(StockReleased),
    PickTaskCreated(PickTaskCreated),
    OrderReadyForShipment(OrderReadyForShipment),
    /// Version 2 (one tracking number per parcel); a version 1 fact is
    /// upcast to it when it is read.
    OrderShipped(OrderShipped),
}

impl Event {
    /// The event's name, as its payload's type is called.
    pub fn name(&self) -> &'static str {
        match self {
            Event::OrderPlaced(_) => "OrderPlaced",
            Event::OrderCancelled(_) => "OrderCancelled",
            Event::PaymentRetryRequested(_) => "PaymentRetryRequested",
            Event::PaymentDelayed(_) => "PaymentDelayed",
            Event::OrderEscalated(_) => "OrderEscalated",
            Event::PaymentAuthorized(_) => "PaymentAuthorized",
            Event::PaymentFailed(_) => "PaymentFailed",
            Event::PaymentVoided(_) => "PaymentVoided",
            Event::StockReserved(_) => "StockReserved",
            Event::StockUnavailable(_) => "StockUnavailable",
            Event::StockReleased(_) => "StockReleased",
            Event::PickTaskCreated(_) => "PickTaskCreated",
            Event::OrderReadyForShipment(_) => "OrderReadyForShipment",
            Event::OrderShipped(_) => "OrderShipped",
        }
    }

    /// Whether the order service publishes it; the others are facts of
    /// payment and the warehouse it records.
    pub fn is_own(&self) -> bool {
        match self {
            Event::OrderPlaced(_)
            | Event::OrderCancelled(_)
            | Event::PaymentRetryRequested(_)
            | Event::PaymentDelayed(_)
            | Event::OrderEscalated(_) => true,
            Event::PaymentAuthorized(_)
            | Event::PaymentFailed(_)
            | Event::PaymentVoided(_)
            | Event::StockReserved(_)
            | Event::StockUnavailable(_)
            | Event::StockReleased(_)
            | Event::PickTaskCreated(_)
            | Event::OrderReadyForShipment(_)
            | Event::OrderShipped(_) => false,
        }
    }
}

/// The order aggregate: [`decide`] and [`evolve`] over the order (`None`
/// before it is placed), for the executor (`crate::wire`) and the tests.
pub struct OrderAggregate;

impl Decider for OrderAggregate {
    type State = Option<Order>;
    type Command = Command;
    type Event = Event;
    type Error = OrderError;
    fn decide(state: &Option<Order>, cmd: Command) -> Result<Vec<Event>, OrderError> {
        decide(state.as_ref(), cmd)
    }
    fn evolve(state: Option<Order>, event: &Event) -> Option<Order> {
        evolve(state, event)
    }
}

/// Where an order is in the saga. Ranks only go up, so an event that arrives
/// late (a payment after the warehouse's news) never moves an order back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, utoipa::ToSchema)]
#[schema(description = "Where the order is in the saga; it only moves forward.")]
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

    /// The status `s` names, as [`Status::as_str`] spells it.
    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Placed,
            Status::AwaitingPayment,
            Status::Paid,
            Status::ReadyForShipment,
            Status::Shipped,
            Status::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

/// The stages that wait on news another service owes and end, at their
/// deadline, in an escalation rather than a cancellation: nothing is lost
/// by waiting there (payment's answer, the warehouse's packed and shipped
/// news come late but come), and the business keeps such orders (SPEC:
/// "when payment comes back every pending order completes"; a queued pick
/// "completes later"). `AWAITING_PAYMENT` has its payment deadline, which
/// cancels.
pub const ESCALATED_STAGES: [Status; 3] = [Status::Placed, Status::Paid, Status::ReadyForShipment];

/// The folded state of one order stream; `None` before `OrderPlaced`.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub placed: OrderPlaced,
    pub status: Status,
    /// Highest payment attempt made or requested.
    pub attempts: u32,
    /// A retry was requested and payment has not answered it yet.
    pub retry_pending: bool,
    pub delay_noticed: bool,
    /// The stage it was last escalated in ([`Command::Escalate`]); the
    /// order waits there still while it equals `status`.
    pub escalated: Option<Status>,
    pub cancel_reason: Option<String>,
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
    /// Record a fact another service published about this order: the
    /// events decided are the fact (stored as it came), then the owner's
    /// reaction.
    Record(Event),
    /// The customer asks for a new payment attempt with another method.
    RetryPayment {
        payment_method_token: String,
    },
    /// Cancel: by the customer (or an operator), with the reason.
    Cancel {
        reason: String,
    },
    /// The payment deadline passed, as the order view said: cancel, if the
    /// order still awaits payment and no retry the customer asked for in
    /// time is still being answered. A retry accepted seconds before the
    /// deadline gets its answer: paid, or declined and then cancelled.
    PaymentDeadlinePassed,
    /// Payment has not answered for longer than usual: tell the customer.
    NoticePaymentDelay {
        waited_ms: i64,
    },
    /// The order waited in `stage` past that stage's deadline: escalate it
    /// (the customer told once, an operator alerted). Refused when it moved
    /// on meanwhile or was escalated in that stage already.
    Escalate {
        stage: Status,
        waited_ms: i64,
    },
}

/// Why an order was cancelled when its payment deadline passed.
pub const PAYMENT_DEADLINE_PASSED: &str = "payment_deadline_passed";

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
    #[error("a payment retry is only possible while the order awaits payment (it is {0})")]
    RetryNotAllowed(&'static str),
    #[error("a payment retry is already in progress")]
    RetryPending,
    #[error("the order is already cancelled")]
    AlreadyCancelled,
    #[error("the order is {0} and can no longer be cancelled")]
    TooLateToCancel(&'static str),
    #[error("nothing to tell: the order is not waiting for payment")]
    NotWaitingForPayment,
    #[error("nothing to escalate: the order is {1}, not waiting in {0}")]
    NotWaitingIn(&'static str, &'static str),
    #[error("the order was escalated in {0} already")]
    AlreadyEscalated(&'static str),
}

/// Decides which events a command produces.
pub fn decide(state: Option<&Order>, cmd: Command) -> Result<Vec<Event>, OrderError> {
    let order = match (state, cmd) {
        (Some(_), Command::Place(_)) => return Err(OrderError::AlreadyPlaced),
        (None, Command::Place(p)) => return place(p),
        (None, _) => return Err(OrderError::UnknownOrder),
        (Some(order), cmd) => (order, cmd),
    };
    match order {
        (order, Command::Record(fact)) => {
            let reaction = react(order, &fact)?;
            Ok(std::iter::once(fact).chain(reaction).collect())
        }
        (order, Command::RetryPayment { payment_method_token }) => {
            if order.status != Status::AwaitingPayment {
                return Err(OrderError::RetryNotAllowed(order.status.as_str()));
            }
            if order.retry_pending {
                return Err(OrderError::RetryPending);
            }
            Ok(vec![Event::PaymentRetryRequested(PaymentRetryRequested {
                order_id: order.placed.order_id.clone(),
                attempt: order.attempts + 1,
                payment_method_token,
            })])
        }
        (order, Command::Cancel { reason }) => match order.status {
            Status::Cancelled => Err(OrderError::AlreadyCancelled),
            Status::Shipped => Err(OrderError::TooLateToCancel(order.status.as_str())),
            _ => Ok(vec![cancelled(order, &reason)]),
        },
        (order, Command::PaymentDeadlinePassed) => {
            if order.status != Status::AwaitingPayment {
                return Err(OrderError::NotWaitingForPayment);
            }
            if order.retry_pending {
                return Err(OrderError::RetryPending);
            }
            Ok(vec![cancelled(order, PAYMENT_DEADLINE_PASSED)])
        }
        (order, Command::NoticePaymentDelay { waited_ms }) => {
            if order.status != Status::Placed || order.delay_noticed {
                return Err(OrderError::NotWaitingForPayment);
            }
            Ok(vec![Event::PaymentDelayed(PaymentDelayed {
                order_id: order.placed.order_id.clone(),
                waited_ms,
            })])
        }
        (order, Command::Escalate { stage, waited_ms }) => escalate(order, stage, waited_ms),
        (_, Command::Place(_)) => Err(OrderError::AlreadyPlaced),
    }
}

/// An escalation of `order` in `stage`, once per stage and only while it is
/// there: a fact that moved it on first (recorded in the same stream, so
/// one of the two commits first) leaves nothing to escalate.
fn escalate(order: &Order, stage: Status, waited_ms: i64) -> Result<Vec<Event>, OrderError> {
    if order.status != stage || !ESCALATED_STAGES.contains(&stage) {
        return Err(OrderError::NotWaitingIn(stage.as_str(), order.status.as_str()));
    }
    if order.escalated == Some(stage) {
        return Err(OrderError::AlreadyEscalated(stage.as_str()));
    }
    Ok(vec![Event::OrderEscalated(OrderEscalated {
        order_id: order.placed.order_id.clone(),
        status: stage.as_str().to_owned(),
        waited_ms,
    })])
}

fn place(p: PlaceOrder) -> Result<Vec<Event>, OrderError> {
    let total = total(&p.items)?;
    Ok(vec![Event::OrderPlaced(OrderPlaced {
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

fn cancelled(order: &Order, reason: &str) -> Event {
    Event::OrderCancelled(OrderCancelled {
        order_id: order.placed.order_id.clone(),
        reason: reason.to_owned(),
    })
}

/// Which facts the order records, and how the saga's owner reacts to them.
/// Compensations of a cancelled order are run by the services that own
/// them: the warehouse releases stock not yet shipped (`StockReleased`), and
/// payment voids an authorisation once the warehouse says nothing ships.
fn react(order: &Order, event: &Event) -> Result<Vec<Event>, OrderError> {
    // Its own events come from its own decisions, never from outside.
    if event.is_own() {
        return Err(OrderError::NotRecorded(event.name()));
    }
    match event {
        Event::StockUnavailable(_) if !matches!(order.status, Status::Cancelled | Status::Shipped) => {
            Ok(vec![cancelled(order, "stock_unavailable")])
        }
        // Every other fact is only recorded.
        _ => Ok(vec![]),
    }
}

/// Folds one event into the state. No rules here: only what happened.
pub fn evolve(state: Option<Order>, event: &Event) -> Option<Order> {
    match (state, event) {
        (None, Event::OrderPlaced(placed)) => Some(Order {
            placed: placed.clone(),
            status: Status::Placed,
            attempts: 0,
            retry_pending: false,
            delay_noticed: false,
            escalated: None,
            cancel_reason: None,
        }),
        (None, _) => None,
        (Some(mut order), event) => {
            let reached = match event {
                Event::PaymentAuthorized(e) => {
                    order.attempts = order.attempts.max(e.attempt);
                    order.retry_pending = false;
                    Some(Status::Paid)
                }
                Event::PaymentFailed(e) => {
                    order.attempts = order.attempts.max(e.attempt);
                    order.retry_pending = false;
                    Some(Status::AwaitingPayment)
                }
                Event::PaymentRetryRequested(e) => {
                    order.attempts = order.attempts.max(e.attempt);
                    order.retry_pending = true;
                    None
                }
                Event::PaymentDelayed(_) => {
                    order.delay_noticed = true;
                    None
                }
                Event::OrderEscalated(e) => {
                    order.escalated = Status::parse(&e.status);
                    None
                }
                Event::OrderReadyForShipment(_) => Some(Status::ReadyForShipment),
                Event::OrderShipped(_) => {
                    // The parcel left before the cancellation reached the
                    // warehouse: it ships, and payment keeps its money.
                    order.status = Status::Shipped;
                    None
                }
                Event::OrderCancelled(e) => {
                    order.cancel_reason = Some(e.reason.clone());
                    order.status = Status::Cancelled;
                    None
                }
                // Facts kept for the timeline that move no status, and a
                // second placement (never decided).
                Event::PaymentVoided(_)
                | Event::StockReserved(_)
                | Event::StockUnavailable(_)
                | Event::StockReleased(_)
                | Event::PickTaskCreated(_)
                | Event::OrderPlaced(_) => None,
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
    use omnisaga_runtime::testing::decider;

    use super::*;

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

    fn placed() -> Event {
        decide(None, place(vec![line("A", 2, 500, "EUR")]))
            .unwrap()
            .remove(0)
    }
    fn authorized(attempt: u32) -> Event {
        Event::PaymentAuthorized(PaymentAuthorized {
            attempt,
            ..Default::default()
        })
    }
    fn failed(attempt: u32) -> Event {
        Event::PaymentFailed(PaymentFailed {
            attempt,
            reason: "card_declined".into(),
            retryable: true,
            ..Default::default()
        })
    }
    fn ready() -> Event {
        Event::OrderReadyForShipment(OrderReadyForShipment::default())
    }
    fn shipped() -> Event {
        Event::OrderShipped(OrderShipped::default())
    }
    fn cancel() -> Command {
        Command::Cancel {
            reason: "customer_request".into(),
        }
    }
    fn retry() -> Command {
        Command::RetryPayment {
            payment_method_token: "tok_visa".into(),
        }
    }
    fn cancelled(reason: &str) -> Event {
        Event::OrderCancelled(OrderCancelled {
            order_id: "o-1".into(),
            reason: reason.into(),
        })
    }

    /// The runtime's given/when/then, with what the order service adds:
    /// recording another service's fact, and the status it leaves.
    type Given = decider::Given<OrderAggregate>;

    fn given(history: &[Event]) -> Given {
        decider::given(history)
    }

    trait Recorded {
        /// Records `event` as the order service does: the fact, then the reaction.
        fn record(self, event: Event) -> Self;
        fn status(&self) -> Status;
    }

    impl Recorded for Given {
        #[track_caller]
        fn record(self, event: Event) -> Self {
            let when = self.when(Command::Record(event.clone()));
            assert_eq!(when.decided().first(), Some(&event), "the fact comes first");
            when.accepted()
        }
        fn status(&self) -> Status {
            self.state().unwrap().status
        }
    }

    #[test]
    fn placing_an_order_prices_it_from_its_lines() {
        let events = decide(
            None,
            place(vec![line("A", 2, 500, "EUR"), line("B", 1, 250, "EUR")]),
        )
        .unwrap();
        let Event::OrderPlaced(p) = &events[0] else {
            panic!("expected OrderPlaced")
        };
        assert_eq!(
            p.total,
            Some(Money {
                minor_units: 1250,
                currency: "EUR".into()
            })
        );
        assert_eq!(given(&events).status(), Status::Placed);
    }

    #[test]
    fn an_order_cannot_be_placed_twice() {
        given(&[placed()])
            .when(place(vec![line("A", 1, 1, "EUR")]))
            .refused(OrderError::AlreadyPlaced);
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
    fn commands_for_an_unknown_order_are_refused() {
        for cmd in [Command::Record(authorized(1)), cancel(), retry()] {
            given(&[]).when(cmd).refused(OrderError::UnknownOrder);
        }
    }

    #[test]
    fn the_happy_path_moves_through_every_status() {
        let g = given(&[placed()]).record(authorized(1));
        assert_eq!(g.status(), Status::Paid);
        let g = g.record(ready());
        assert_eq!(g.status(), Status::ReadyForShipment);
        let g = g.record(shipped());
        assert_eq!(g.status(), Status::Shipped);
    }

    #[test]
    fn a_late_event_never_moves_the_status_back() {
        let g = given(&[placed(), ready(), authorized(1), failed(1)]);
        assert_eq!(g.status(), Status::ReadyForShipment);
    }

    #[test]
    fn the_order_does_not_record_its_own_placement_from_outside() {
        given(&[placed()])
            .when(Command::Record(placed()))
            .refused(OrderError::NotRecorded("OrderPlaced"));
    }

    #[test]
    fn a_declined_payment_awaits_a_retry_which_asks_for_the_next_attempt() {
        let g = given(&[placed()]).record(failed(1));
        assert_eq!(g.status(), Status::AwaitingPayment);
        let when = g.when(retry());
        let Event::PaymentRetryRequested(r) = &when.decided()[0] else {
            panic!("expected a retry request")
        };
        assert_eq!(r.attempt, 2);
        // One retry at a time.
        let g = when.accepted().when(retry()).refused(OrderError::RetryPending);
        let g = g.record(authorized(2));
        assert_eq!(g.status(), Status::Paid);
    }

    #[test]
    fn a_retry_is_refused_unless_the_order_awaits_payment() {
        given(&[placed()])
            .when(retry())
            .refused(OrderError::RetryNotAllowed("PLACED"));
        let paid = given(&[placed()]).record(authorized(1));
        paid.when(retry()).refused(OrderError::RetryNotAllowed("PAID"));
        let gone = given(&[placed(), cancelled("customer_request")]);
        gone.when(retry())
            .refused(OrderError::RetryNotAllowed("CANCELLED"));
    }

    #[test]
    fn an_order_can_be_cancelled_until_it_ships() {
        for history in [
            vec![placed()],
            vec![placed(), failed(1)],
            vec![placed(), authorized(1)],
            vec![placed(), authorized(1), ready()],
        ] {
            given(&history)
                .when(cancel())
                .then(&[cancelled("customer_request")]);
        }
        given(&[placed(), authorized(1), ready(), shipped()])
            .when(cancel())
            .refused(OrderError::TooLateToCancel("SHIPPED"));
        given(&[placed(), cancelled("x")])
            .when(cancel())
            .refused(OrderError::AlreadyCancelled);
    }

    #[test]
    fn a_parcel_that_left_before_the_cancellation_arrived_ships() {
        let g = given(&[placed(), authorized(1), cancelled("customer_request")]).record(shipped());
        assert_eq!(g.status(), Status::Shipped);
        assert_eq!(g.0.len(), 4, "no reaction");
        g.when(cancel()).refused(OrderError::TooLateToCancel("SHIPPED"));
        // Packed news after the cancellation does not undo it.
        let g = given(&[placed(), authorized(1), cancelled("customer_request")]).record(ready());
        assert_eq!(g.status(), Status::Cancelled);
    }

    #[test]
    fn unavailable_stock_cancels_the_order() {
        let g = given(&[placed()]).record(Event::StockUnavailable(StockUnavailable::default()));
        assert_eq!(g.status(), Status::Cancelled);
        assert_eq!(
            g.state().unwrap().cancel_reason.as_deref(),
            Some("stock_unavailable")
        );
    }

    #[test]
    fn an_authorisation_for_a_cancelled_order_is_recorded_and_the_order_stays_cancelled() {
        // Payment voids it once the warehouse released the stock; the order only records the fact.
        let g = given(&[placed(), cancelled(PAYMENT_DEADLINE_PASSED)]).record(authorized(1));
        assert_eq!(g.status(), Status::Cancelled);
        assert_eq!(g.0.len(), 3, "no reaction");
    }

    #[test]
    fn facts_after_cancellation_cause_no_second_cancellation() {
        let g = given(&[placed(), cancelled("customer_request")])
            .record(Event::StockUnavailable(StockUnavailable::default()))
            .record(Event::StockReserved(StockReserved::default()));
        let cancellations =
            g.0.iter()
                .filter(|e| matches!(e, Event::OrderCancelled(_)))
                .count();
        assert_eq!(cancellations, 1);
    }

    #[test]
    fn the_payment_deadline_waits_for_a_retry_asked_for_in_time_and_spares_a_paid_order() {
        let waiting = given(&[placed()]).record(failed(1));
        let retrying = waiting.when(retry()).accepted();
        let retrying = retrying
            .when(Command::PaymentDeadlinePassed)
            .refused(OrderError::RetryPending);
        // Declined again: the deadline has passed, so it cancels now.
        let declined = retrying.record(failed(2));
        let when = declined.when(Command::PaymentDeadlinePassed);
        let Event::OrderCancelled(c) = &when.decided()[0] else {
            panic!("expected a cancellation")
        };
        assert_eq!(c.reason, PAYMENT_DEADLINE_PASSED);
        // Paid between the view's look and the command: nothing to cancel.
        given(&[placed()])
            .record(failed(1))
            .when(retry())
            .accepted()
            .record(authorized(2))
            .when(Command::PaymentDeadlinePassed)
            .refused(OrderError::NotWaitingForPayment);
        given(&[placed()])
            .when(Command::PaymentDeadlinePassed)
            .refused(OrderError::NotWaitingForPayment);
    }

    #[test]
    fn the_customer_is_told_of_a_payment_delay_once_and_only_while_waiting() {
        let g = given(&[placed()]);
        let when = g.when(Command::NoticePaymentDelay { waited_ms: 5000 });
        assert!(matches!(when.decided()[0], Event::PaymentDelayed(_)));
        when.accepted()
            .when(Command::NoticePaymentDelay { waited_ms: 9000 })
            .refused(OrderError::NotWaitingForPayment);
        let paid = given(&[placed()]).record(authorized(1));
        paid.when(Command::NoticePaymentDelay { waited_ms: 1 })
            .refused(OrderError::NotWaitingForPayment);
    }
}
