//! The payment-provider simulator: configurable latency, decline and outage
//! rates, and deterministic test tokens. Like a real provider it is
//! idempotent per payment id: asking twice gives the first answer.
//!
//! | token | answer |
//! |---|---|
//! | `tok_decline` | declined, `card_declined` |
//! | `tok_insufficient_funds` | declined, `insufficient_funds` |
//! | `tok_unavailable` | provider unavailable |
//! | anything else | approved, unless a random decline or outage hits |

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
    time::Duration,
};

use rand::Rng;

#[derive(Debug, Clone, Default)]
pub struct ProviderConfig {
    pub latency: Duration,
    pub decline_rate: f64,
    pub outage_rate: f64,
}

/// The provider's answer to an authorisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Approved,
    Declined(String),
    Unavailable,
}

#[derive(Debug, Default)]
pub struct Provider {
    config: ProviderConfig,
    /// When set, every call answers `Unavailable` (an outage switch for tests and demos).
    pub outage: AtomicBool,
    answers: Mutex<HashMap<String, Outcome>>,
    /// Payment ids whose authorisation was voided.
    voided: Mutex<std::collections::HashSet<String>>,
}

impl Provider {
    pub fn new(config: ProviderConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Authorises `amount_minor` for `payment_id` with `token`.
    pub async fn authorize(&self, payment_id: &str, token: &str) -> Outcome {
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        if self.outage.load(Ordering::Relaxed) {
            return Outcome::Unavailable;
        }
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = answers.get(payment_id) {
            return known.clone();
        }
        let outcome = match token {
            "tok_decline" => Outcome::Declined("card_declined".into()),
            "tok_insufficient_funds" => Outcome::Declined("insufficient_funds".into()),
            "tok_unavailable" => Outcome::Unavailable,
            _ => {
                let roll: f64 = rand::rng().random();
                if roll < self.config.outage_rate {
                    Outcome::Unavailable
                } else if roll < self.config.outage_rate + self.config.decline_rate {
                    Outcome::Declined("card_declined".into())
                } else {
                    Outcome::Approved
                }
            }
        };
        // An outage is no answer: the same payment id may be tried again.
        if outcome != Outcome::Unavailable {
            answers.insert(payment_id.to_owned(), outcome.clone());
        }
        outcome
    }
}

impl Provider {
    /// Releases an authorisation. The simulator always can; voiding twice,
    /// or an id it never approved, changes nothing.
    pub async fn void(&self, payment_id: &str) {
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        self.voided
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(payment_id.to_owned());
        tracing::info!(payment.id = payment_id, "authorisation voided with the provider");
    }

    /// Whether the provider holds money for `payment_id`: approved and not
    /// voided (a real provider answers this by the payment's idempotency key).
    pub fn holds(&self, payment_id: &str) -> bool {
        let approved = self
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(payment_id)
            .is_some_and(|a| *a == Outcome::Approved);
        approved
            && !self
                .voided
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(payment_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn test_tokens_answer_deterministically() {
        let p = Provider::default();
        assert_eq!(p.authorize("p1", "tok_visa").await, Outcome::Approved);
        assert_eq!(
            p.authorize("p2", "tok_decline").await,
            Outcome::Declined("card_declined".into())
        );
        assert_eq!(p.authorize("p3", "tok_unavailable").await, Outcome::Unavailable);
    }

    #[tokio::test]
    async fn a_repeated_payment_id_gets_the_first_answer() {
        let p = Provider::new(ProviderConfig {
            decline_rate: 0.5,
            ..Default::default()
        });
        let first = p.authorize("same", "tok_visa").await;
        for _ in 0..20 {
            assert_eq!(p.authorize("same", "tok_visa").await, first);
        }
    }

    #[tokio::test]
    async fn an_approval_is_held_until_voided() {
        let p = Provider::default();
        assert!(!p.holds("p1"), "nothing asked, nothing held");
        p.authorize("p1", "tok_visa").await;
        p.authorize("p2", "tok_decline").await;
        assert!(p.holds("p1"));
        assert!(!p.holds("p2"), "a decline holds nothing");
        p.void("p1").await;
        assert!(!p.holds("p1"));
        assert_eq!(
            p.authorize("p1", "tok_visa").await,
            Outcome::Approved,
            "asking again gives the first answer"
        );
        assert!(!p.holds("p1"), "and does not authorise again");
    }

    #[tokio::test]
    async fn the_outage_switch_makes_every_call_unavailable() {
        let p = Provider::default();
        p.outage.store(true, Ordering::Relaxed);
        assert_eq!(p.authorize("p1", "tok_visa").await, Outcome::Unavailable);
    }
}
