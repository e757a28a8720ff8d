//! The payment aggregate of one order, pure. The provider's answer comes in
//! with the command, so `decide` has no I/O.

use omnisaga_proto::v1::{envelope::Payload, Money, PaymentAuthorized, PaymentFailed, PaymentVoided};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Payment {
    pub amount: Option<Money>,
    pub attempts: u32,
    pub authorized: Option<String>,
    pub voided: bool,
    /// The order was cancelled: no further attempt may charge it.
    pub cancelled: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProviderAnswer {
    Approved,
    Declined(String),
    Unavailable,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizePayment {
    pub order_id: String,
    pub amount: Money,
    pub attempt: u32,
    pub answer: ProviderAnswer,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PaymentError {
    #[error("the order is already paid")]
    AlreadyAuthorized,
    #[error("the order is cancelled")]
    OrderCancelled,
    #[error("attempt {0} was already made")]
    AttemptAlreadyMade(u32),
}

/// The provider's payment id of an attempt; stable, so the provider dedupes retries.
pub fn payment_id(order_id: &str, attempt: u32) -> String {
    format!("pay-{order_id}-{attempt}")
}

/// Compensation of a cancelled order: an authorisation still standing is voided.
pub fn void_on_cancel(state: &Payment, order_id: &str) -> Vec<Payload> {
    match &state.authorized {
        Some(payment_id) if !state.voided => vec![Payload::PaymentVoided(PaymentVoided {
            order_id: order_id.to_owned(),
            payment_id: payment_id.clone(),
            amount: state.amount.clone(),
        })],
        _ => vec![],
    }
}

/// Whether `attempt` may still be made: not for a cancelled or paid order,
/// and never twice.
pub fn may_attempt(state: &Payment, attempt: u32) -> Result<(), PaymentError> {
    if state.cancelled {
        return Err(PaymentError::OrderCancelled);
    }
    if state.authorized.is_some() {
        return Err(PaymentError::AlreadyAuthorized);
    }
    if attempt <= state.attempts {
        return Err(PaymentError::AttemptAlreadyMade(attempt));
    }
    Ok(())
}

pub fn decide(state: &Payment, cmd: AuthorizePayment) -> Result<Vec<Payload>, PaymentError> {
    may_attempt(state, cmd.attempt)?;
    let payment_id = payment_id(&cmd.order_id, cmd.attempt);
    let event = match cmd.answer {
        ProviderAnswer::Approved => Payload::PaymentAuthorized(PaymentAuthorized {
            order_id: cmd.order_id,
            payment_id,
            amount: Some(cmd.amount),
            attempt: cmd.attempt,
        }),
        ProviderAnswer::Declined(reason) => Payload::PaymentFailed(PaymentFailed {
            order_id: cmd.order_id,
            payment_id,
            amount: Some(cmd.amount),
            attempt: cmd.attempt,
            reason,
            retryable: true,
        }),
        ProviderAnswer::Unavailable => Payload::PaymentFailed(PaymentFailed {
            order_id: cmd.order_id,
            payment_id,
            amount: Some(cmd.amount),
            attempt: cmd.attempt,
            reason: "provider_unavailable".into(),
            retryable: true,
        }),
    };
    Ok(vec![event])
}

pub fn evolve(mut state: Payment, event: &Payload) -> Payment {
    match event {
        Payload::PaymentAuthorized(e) => {
            state.attempts = state.attempts.max(e.attempt);
            state.amount = e.amount.clone();
            state.authorized = Some(e.payment_id.clone());
        }
        Payload::PaymentFailed(e) => {
            state.attempts = state.attempts.max(e.attempt);
            state.amount = e.amount.clone();
        }
        Payload::PaymentVoided(_) => state.voided = true,
        Payload::OrderCancelled(_) => state.cancelled = true,
        _ => {}
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authorize(attempt: u32, answer: ProviderAnswer) -> AuthorizePayment {
        AuthorizePayment {
            order_id: "o-1".into(),
            amount: Money {
                minor_units: 1999,
                currency: "EUR".into(),
            },
            attempt,
            answer,
        }
    }

    fn given(events: &[Payload]) -> Payment {
        events.iter().fold(Payment::default(), evolve)
    }

    #[test]
    fn an_approved_attempt_authorizes_the_amount() {
        let events = decide(&given(&[]), authorize(1, ProviderAnswer::Approved)).unwrap();
        let Payload::PaymentAuthorized(e) = &events[0] else {
            panic!("expected PaymentAuthorized")
        };
        assert_eq!(e.payment_id, "pay-o-1-1");
        assert_eq!(given(&events).authorized.as_deref(), Some("pay-o-1-1"));
    }

    #[test]
    fn a_decline_and_an_outage_fail_retryably_with_their_reason() {
        for (answer, reason) in [
            (ProviderAnswer::Declined("card_declined".into()), "card_declined"),
            (ProviderAnswer::Unavailable, "provider_unavailable"),
        ] {
            let events = decide(&given(&[]), authorize(1, answer)).unwrap();
            let Payload::PaymentFailed(e) = &events[0] else {
                panic!("expected PaymentFailed")
            };
            assert_eq!((e.reason.as_str(), e.retryable), (reason, true));
        }
    }

    #[test]
    fn a_paid_order_is_never_charged_again() {
        let paid = decide(&given(&[]), authorize(1, ProviderAnswer::Approved)).unwrap();
        assert_eq!(
            decide(&given(&paid), authorize(2, ProviderAnswer::Approved)),
            Err(PaymentError::AlreadyAuthorized)
        );
    }

    fn order_cancelled() -> Payload {
        Payload::OrderCancelled(omnisaga_proto::v1::OrderCancelled::default())
    }

    #[test]
    fn cancelling_an_authorized_order_voids_the_authorization_once() {
        let paid = decide(&given(&[]), authorize(1, ProviderAnswer::Approved)).unwrap();
        let history = [paid, vec![order_cancelled()]].concat();
        let voided = void_on_cancel(&given(&history), "o-1");
        let Payload::PaymentVoided(v) = &voided[0] else {
            panic!("expected PaymentVoided")
        };
        assert_eq!(v.payment_id, "pay-o-1-1");
        assert_eq!(
            void_on_cancel(&given(&[history, voided].concat()), "o-1"),
            vec![],
            "voided twice"
        );
    }

    #[test]
    fn cancelling_an_unpaid_order_voids_nothing_and_stops_further_attempts() {
        let failed = decide(
            &given(&[]),
            authorize(1, ProviderAnswer::Declined("card_declined".into())),
        )
        .unwrap();
        let history = [failed, vec![order_cancelled()]].concat();
        assert_eq!(void_on_cancel(&given(&history), "o-1"), vec![]);
        assert_eq!(
            decide(&given(&history), authorize(2, ProviderAnswer::Approved)),
            Err(PaymentError::OrderCancelled)
        );
    }

    #[test]
    fn the_same_attempt_is_not_made_twice() {
        let failed = decide(&given(&[]), authorize(1, ProviderAnswer::Unavailable)).unwrap();
        assert_eq!(
            decide(&given(&failed), authorize(1, ProviderAnswer::Approved)),
            Err(PaymentError::AttemptAlreadyMade(1))
        );
        assert!(decide(&given(&failed), authorize(2, ProviderAnswer::Approved)).is_ok());
    }
}
