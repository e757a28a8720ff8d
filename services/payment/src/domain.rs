//! The payment aggregate of one order, pure: `decide` turns a command into
//! the events the order's payment stream gets, and `evolve` folds them into
//! the state. The provider's answer comes in with the command, so there is no
//! I/O; [`attempt`] says, before the provider is called, which attempt a
//! request makes, so a refused one never charges. Facts of other services
//! (`OrderCancelled`; the warehouse's `StockReleased` and `StockUnavailable`)
//! are among the [`Event`]s decided when recorded; [`publishes`] tells them
//! from payment's own. `crate::wire` maps the events to and from the
//! protobuf payloads.
//!
//! An authorisation is voided when the warehouse says nothing of the order
//! will ship (its stock went back or was never there), not when the order is
//! cancelled: a cancellation that reaches the warehouse after the parcel left
//! must not release the money for goods on their way.

use omnisaga_proto::v1::{
    Money, OrderCancelled, PaymentAuthorized, PaymentFailed, PaymentVoided, StockReleased, StockUnavailable,
};
use omnisaga_runtime::aggregate::Decider;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

/// What an order's payment stream holds: payment's own events and the facts
/// of other services it keeps.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// "Payment successful": the provider approved an attempt.
    PaymentAuthorized(PaymentAuthorized),
    /// The provider declined an attempt or could not be reached.
    PaymentFailed(PaymentFailed),
    /// An authorisation was released because nothing of the order ships.
    PaymentVoided(PaymentVoided),
    /// The order service's fact: the order is cancelled.
    OrderCancelled(OrderCancelled),
    /// The warehouse's fact: the order's stock went back.
    StockReleased(StockReleased),
    /// The warehouse's fact: the order's stock was never there.
    StockUnavailable(StockUnavailable),
}

impl Event {
    /// The event's name, as its payload's type is called.
    pub fn name(&self) -> &'static str {
        match self {
            Event::PaymentAuthorized(_) => "PaymentAuthorized",
            Event::PaymentFailed(_) => "PaymentFailed",
            Event::PaymentVoided(_) => "PaymentVoided",
            Event::OrderCancelled(_) => "OrderCancelled",
            Event::StockReleased(_) => "StockReleased",
            Event::StockUnavailable(_) => "StockUnavailable",
        }
    }
}

/// The payment aggregate of one order: [`decide`] and [`evolve`] over
/// [`Payment`], for the executor (`crate::wire`) and the tests.
pub struct PaymentAggregate;

impl Decider for PaymentAggregate {
    type State = Payment;
    type Command = Command;
    type Event = Event;
    type Error = PaymentError;
    fn decide(state: &Payment, cmd: Command) -> Result<Vec<Event>, PaymentError> {
        decide(state, cmd)
    }
    fn evolve(state: Payment, event: &Event) -> Payment {
        evolve(state, event)
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Payment {
    pub amount: Option<Money>,
    /// Highest attempt made.
    pub attempts: u32,
    /// The payment id of the authorisation.
    pub authorized: Option<String>,
    pub voided: bool,
    /// The order was cancelled: no further attempt may charge it.
    pub cancelled: bool,
    /// The warehouse released the order's stock or had none: nothing ships.
    pub nothing_ships: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProviderAnswer {
    Approved,
    Declined(String),
    Unavailable,
}

/// What the order service asks payment for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// The first attempt, for the total of the order just placed.
    Placed { amount: Money },
    /// Another attempt after a failure, numbered by the order service.
    Retry { attempt: u32 },
}

/// An attempt that may be made: its number and the amount it charges.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub number: u32,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Record the provider's answer to the attempt `request` makes.
    Authorize {
        order_id: String,
        request: Request,
        answer: ProviderAnswer,
    },
    /// The order is cancelled: no further attempt may charge it.
    Cancel(OrderCancelled),
    /// The warehouse's word that nothing of the order ships (`StockReleased`
    /// or `StockUnavailable`): void an authorisation still standing.
    Void(Box<Event>),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PaymentError {
    #[error("the order is already paid")]
    AlreadyAuthorized,
    #[error("the order is cancelled")]
    OrderCancelled,
    #[error("the order is already cancelled")]
    AlreadyCancelled,
    #[error("nothing of the order ships")]
    NothingShips,
    #[error("the warehouse already said nothing ships")]
    AlreadyVoidable,
    #[error("event {0} does not void a payment")]
    NotAVoid(&'static str),
    #[error("attempt {0} was already made")]
    AttemptAlreadyMade(u32),
    #[error("a retry before any attempt: the amount is unknown")]
    NothingToRetry,
}

/// The provider's payment id of an attempt; stable, so the provider dedupes retries.
pub fn payment_id(order_id: &str, attempt: u32) -> String {
    format!("pay-{order_id}-{attempt}")
}

/// Which attempt `request` makes. Asked before the provider is called: a
/// cancelled or paid order is never charged, and an attempt never twice.
pub fn attempt(state: &Payment, request: &Request) -> Result<Attempt, PaymentError> {
    let (number, amount) = match request {
        Request::Placed { amount } => (1, amount.clone()),
        Request::Retry { attempt } => {
            let amount = state.amount.clone().ok_or(PaymentError::NothingToRetry)?;
            (*attempt, amount)
        }
    };
    if state.cancelled {
        return Err(PaymentError::OrderCancelled);
    }
    if state.nothing_ships {
        return Err(PaymentError::NothingShips);
    }
    if state.authorized.is_some() {
        return Err(PaymentError::AlreadyAuthorized);
    }
    if number <= state.attempts {
        return Err(PaymentError::AttemptAlreadyMade(number));
    }
    Ok(Attempt { number, amount })
}

/// The attempt a refused `request` would have made, when the provider may
/// still hold an answer to it that was never recorded.
///
/// The provider is asked before the answer is recorded, so a transaction
/// that rolled back after the provider approved (a crash, a lost database
/// connection) leaves an approval nobody knows of. When its redelivery is
/// refused because nothing is to be paid any more (the order was cancelled,
/// nothing of it ships, or another attempt was approved), no `PaymentVoided`
/// will ever release that approval: the caller asks the provider and voids
/// it. An attempt already recorded is not one of these: its answer is
/// known, and a standing authorisation is voided by [`Command::Void`].
pub fn unrecorded_attempt(state: &Payment, request: &Request, refusal: &PaymentError) -> Option<u32> {
    let number = match request {
        Request::Placed { .. } => 1,
        Request::Retry { attempt } => *attempt,
    };
    let nothing_to_pay = matches!(
        refusal,
        PaymentError::OrderCancelled | PaymentError::NothingShips | PaymentError::AlreadyAuthorized
    );
    (nothing_to_pay && number > state.attempts).then_some(number)
}

/// Decides which events a command appends to the order's payment stream.
pub fn decide(state: &Payment, cmd: Command) -> Result<Vec<Event>, PaymentError> {
    match cmd {
        Command::Authorize {
            order_id,
            request,
            answer,
        } => {
            let Attempt { number, amount } = attempt(state, &request)?;
            Ok(vec![answered(order_id, number, amount, answer)])
        }
        Command::Cancel(cancelled) => {
            if state.cancelled {
                return Err(PaymentError::AlreadyCancelled);
            }
            Ok(vec![Event::OrderCancelled(cancelled)])
        }
        Command::Void(fact) => {
            let order_id = match fact.as_ref() {
                Event::StockReleased(e) => e.order_id.clone(),
                Event::StockUnavailable(e) => e.order_id.clone(),
                other => return Err(PaymentError::NotAVoid(other.name())),
            };
            if state.nothing_ships {
                return Err(PaymentError::AlreadyVoidable);
            }
            let void = match &state.authorized {
                Some(payment_id) if !state.voided => Some(Event::PaymentVoided(PaymentVoided {
                    order_id,
                    payment_id: payment_id.clone(),
                    amount: state.amount.clone(),
                })),
                _ => None,
            };
            Ok(std::iter::once(*fact).chain(void).collect())
        }
    }
}

/// The event of the provider's `answer` to attempt `number`.
fn answered(order_id: String, number: u32, amount: Money, answer: ProviderAnswer) -> Event {
    let payment_id = payment_id(&order_id, number);
    let reason = match answer {
        ProviderAnswer::Approved => {
            return Event::PaymentAuthorized(PaymentAuthorized {
                order_id,
                payment_id,
                amount: Some(amount),
                attempt: number,
            })
        }
        ProviderAnswer::Declined(reason) => reason,
        ProviderAnswer::Unavailable => "provider_unavailable".into(),
    };
    Event::PaymentFailed(PaymentFailed {
        order_id,
        payment_id,
        amount: Some(amount),
        attempt: number,
        reason,
        retryable: true,
    })
}

/// Whether payment publishes `event`; the others are facts it only records.
pub fn publishes(event: &Event) -> bool {
    match event {
        Event::PaymentAuthorized(_) | Event::PaymentFailed(_) | Event::PaymentVoided(_) => true,
        Event::OrderCancelled(_) | Event::StockReleased(_) | Event::StockUnavailable(_) => false,
    }
}

/// Folds one event into the state. No rules here: only what happened.
pub fn evolve(mut state: Payment, event: &Event) -> Payment {
    match event {
        Event::PaymentAuthorized(e) => {
            state.attempts = state.attempts.max(e.attempt);
            state.amount = e.amount.clone();
            state.authorized = Some(e.payment_id.clone());
        }
        Event::PaymentFailed(e) => {
            state.attempts = state.attempts.max(e.attempt);
            state.amount = e.amount.clone();
        }
        Event::PaymentVoided(_) => state.voided = true,
        Event::OrderCancelled(_) => state.cancelled = true,
        Event::StockReleased(_) | Event::StockUnavailable(_) => state.nothing_ships = true,
    }
    state
}
