//! The payment-provider simulator: configurable latency, decline and outage
//! rates, and deterministic test tokens. Like a real provider it is
//! idempotent per payment id: asking twice gives the first answer. Its
//! ledger (each payment id's answer, and voids) is the `provider_ledger`
//! table (its statements in `crate::store::ledger`), written in statements
//! of its own, never in the caller's transaction: it outlives a crash of
//! the payment service as a provider's records would, and the fault suite
//! compares it with the payment streams.
//!
//! | token | answer |
//! |---|---|
//! | `tok_decline` | declined, `card_declined` |
//! | `tok_insufficient_funds` | declined, `insufficient_funds` |
//! | `tok_unavailable` | provider unavailable |
//! | `tok_charged_unavailable` | approved and recorded in the ledger, yet every call answers unavailable: only [`Provider::lookup`] tells |
//! | `tok_charged_timeout` | approved and recorded in the ledger, yet every call ends without an answer (an error, as a timeout) |
//! | anything else | approved, unless a random decline or outage hits |
//!
//! Ambiguity: an unavailable answer or none at all does not say the
//! provider took nothing. Besides the two tokens above, a share of first
//! approvals (`PAYMENT_AMBIGUOUS_RATE`) is recorded and then answered
//! unavailable; asking again with the payment id (the idempotency key) gets
//! the approval, and [`Provider::lookup`] tells the outcome by key.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};

use anyhow::{Context, Result};
use rand::Rng;
use sqlx::PgPool;

use crate::store::ledger;

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub latency: Duration,
    pub decline_rate: f64,
    pub outage_rate: f64,
    /// Share of first approvals recorded in the ledger and then answered
    /// unavailable (`PAYMENT_AMBIGUOUS_RATE`): the charge happened, the
    /// answer was lost. Asking again with the same payment id gets it.
    pub ambiguous_rate: f64,
    /// How long the ledger keeps an answer (`PAYMENT_PROVIDER_LEDGER_DAYS`):
    /// a payment id asked again after that would be answered anew.
    pub ledger_retention: Duration,
    /// Longest a call to the provider may take (`PAYMENT_PROVIDER_TIMEOUT_MS`):
    /// past it the call has no answer, and it is made again later.
    pub timeout: Duration,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            decline_rate: 0.0,
            outage_rate: 0.0,
            ambiguous_rate: 0.0,
            ledger_retention: Duration::from_secs(30 * 24 * 3600),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The provider's answer to an authorisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Approved,
    Declined(String),
    Unavailable,
}

/// Answers recorded between two prunes of the ledger.
const PRUNE_EVERY: u64 = 1000;

#[derive(Debug)]
pub struct Provider {
    config: ProviderConfig,
    /// When set, every call answers `Unavailable` (an outage switch for tests and demos).
    pub outage: AtomicBool,
    ledger: PgPool,
    answered: AtomicU64,
}

impl Provider {
    pub fn new(config: ProviderConfig, ledger: PgPool) -> Self {
        Self {
            config,
            outage: AtomicBool::new(false),
            ledger,
            answered: AtomicU64::new(0),
        }
    }

    /// Authorises the payment `payment_id` with `token`. An error is no
    /// answer (the ledger could not be read or written): the caller asks
    /// again with the same payment id, as with a provider that timed out.
    pub async fn authorize(&self, payment_id: &str, token: &str) -> Result<Outcome> {
        self.bounded(self.authorize_unbounded(payment_id, token)).await
    }

    /// The longest a call to the provider may take.
    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }

    /// `call`, failed once it took longer than the provider's timeout.
    async fn bounded<T>(&self, call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        tokio::time::timeout(self.config.timeout, call)
            .await
            .map_err(|_| anyhow::anyhow!("the provider did not answer within {:?}", self.config.timeout))?
    }

    /// The latency is a round trip: half of it before the provider decides
    /// and records, half after, while the answer is on its way back (a
    /// caller that dies then leaves a recorded charge it never heard of).
    async fn authorize_unbounded(&self, payment_id: &str, token: &str) -> Result<Outcome> {
        let there = self.config.latency / 2;
        sleep(there).await;
        let answer = self.answer(payment_id, token).await;
        sleep(self.config.latency - there).await;
        answer
    }

    async fn answer(&self, payment_id: &str, token: &str) -> Result<Outcome> {
        if self.outage.load(Ordering::Relaxed) {
            return Ok(Outcome::Unavailable);
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
        let (kind, reason) = match &outcome {
            // An outage is no answer: the same payment id may be tried again.
            Outcome::Unavailable => return Ok(outcome),
            Outcome::Approved => ("APPROVED", ""),
            Outcome::Declined(reason) => ("DECLINED", reason.as_str()),
        };
        // The first answer stands, also when two callers ask at once.
        let (kind, reason, first) = ledger::record_answer(&self.ledger, payment_id, kind, reason)
            .await
            .context("the provider's ledger did not answer")?;
        if self
            .answered
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PRUNE_EVERY)
        {
            self.prune().await;
        }
        // Charged, and the answer lost on its way back.
        match token {
            "tok_charged_unavailable" => return Ok(Outcome::Unavailable),
            "tok_charged_timeout" => anyhow::bail!("the provider did not answer (timed out)"),
            _ if first && kind == "APPROVED" && rand::rng().random::<f64>() < self.config.ambiguous_rate => {
                return Ok(Outcome::Unavailable)
            }
            _ => {}
        }
        Ok(match kind.as_str() {
            "APPROVED" => Outcome::Approved,
            _ => Outcome::Declined(reason),
        })
    }

    /// Releases an authorisation. The simulator always can; voiding twice,
    /// or an id it never approved, changes nothing.
    pub async fn void(&self, payment_id: &str) -> Result<()> {
        self.bounded(self.void_unbounded(payment_id)).await
    }

    async fn void_unbounded(&self, payment_id: &str) -> Result<()> {
        sleep(self.config.latency).await;
        ledger::void(&self.ledger, payment_id)
            .await
            .context("the provider's ledger did not answer")?;
        tracing::info!(payment.id = payment_id, "authorisation voided with the provider");
        Ok(())
    }

    /// Whether the provider holds money for `payment_id`: approved and not
    /// voided (a real provider answers this by the payment's idempotency key).
    pub async fn holds(&self, payment_id: &str) -> Result<bool> {
        self.bounded(async {
            let held = ledger::holds(&self.ledger, payment_id)
                .await
                .context("the provider's ledger did not answer")?;
            Ok(held.unwrap_or(false))
        })
        .await
    }

    /// The outcome of `payment_id` as the provider recorded it, asked by
    /// the idempotency key after an ambiguous answer: `None` when it took
    /// nothing under that key (a void does not change the outcome). Answers
    /// during an outage too: the ledger is not the authorisation endpoint.
    pub async fn lookup(&self, payment_id: &str) -> Result<Option<Outcome>> {
        let row = ledger::answer(&self.ledger, payment_id)
            .await
            .context("the provider's ledger did not answer")?;
        Ok(row.map(|(kind, reason)| match kind.as_str() {
            "APPROVED" => Outcome::Approved,
            _ => Outcome::Declined(reason),
        }))
    }

    /// Forgets answers older than the ledger's retention, a bounded batch at
    /// a time; a failure only leaves them for the next prune.
    async fn prune(&self) {
        match ledger::prune(&self.ledger, self.config.ledger_retention.as_secs_f64()).await {
            Ok(rows) if rows > 0 => tracing::info!(rows, "provider ledger pruned"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "provider ledger not pruned"),
        }
    }
}

/// Waits `d`, unless it is zero.
async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}
