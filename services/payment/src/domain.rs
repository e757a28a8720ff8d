//! The payment aggregate of one order, pure. The provider's answer comes in
//! with the command, so `decide` has no I/O.

use omnisaga_proto::v1::{envelope::Payload, Money, PaymentAuthorized, PaymentFailed};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Payment {
    pub amount: Option<Money>,
    pub attempts: u32,
    pub authorized: Option<String>,
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
    #[error("attempt {0} was already made")]
    AttemptAlreadyMade(u32),
}

/// The provider's payment id of an attempt; stable, so the provider dedupes retries.
pub fn payment_id(order_id: &str, attempt: u32) -> String {
    format!("pay-{order_id}-{attempt}")
}

pub fn decide(state: &Payment, cmd: AuthorizePayment) -> Result<Vec<Payload>, PaymentError> {
    if state.authorized.is_some() {
        return Err(PaymentError::AlreadyAuthorized);
    }
    if cmd.attempt <= state.attempts {
        return Err(PaymentError::AttemptAlreadyMade(cmd.attempt));
    }
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
