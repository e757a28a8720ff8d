//! When applying a record fails: transient failures are retried with
//! backoff and jitter, rejections up to `max_attempts` times, and then the
//! record is dead-lettered.

use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::dead_letter;
use super::{observe::count, Applied, Applier, Consumer, Handler, HandlerError, Incoming, Raw};

impl<H: Handler> Consumer<H> {
    pub(super) async fn apply_with_retries(
        &self,
        raw: &Raw,
        incoming: Incoming,
        shutdown: &CancellationToken,
    ) -> bool {
        let mut rejections = 0;
        let mut attempt = 0u32;
        loop {
            let (name, topic) = (self.applier.name.as_str(), raw.topic.as_str());
            let error = match self.applier.apply(raw, &incoming).await {
                Ok(Applied::Done) => {
                    count(name, topic, "ok");
                    return true;
                }
                Ok(Applied::Duplicate) => {
                    count(name, topic, "duplicate");
                    return true;
                }
                Ok(Applied::Parked) => {
                    tracing::warn!("record parked behind an earlier dead letter of its order");
                    count(name, topic, "parked");
                    return true;
                }
                Err(HandlerError::Rejected(e)) => {
                    rejections += 1;
                    if rejections >= self.applier.max_attempts {
                        let reason = format!("{e:#}");
                        let event_type = Some(incoming.envelope.event_type.as_str());
                        return self.applier.dead_letter(raw, event_type, &reason, shutdown).await;
                    }
                    e
                }
                Err(HandlerError::Transient(e)) => e,
            };
            attempt += 1;
            count(name, topic, "retried");
            tracing::warn!(error = %format!("{error:#}"), attempt, "handling failed, retrying");
            if !sleep_backoff(attempt, shutdown).await {
                return false;
            }
        }
    }
}

impl<H: Handler> Applier<H> {
    /// Parks `raw` as a dead letter, retrying until the database takes it.
    pub(super) async fn dead_letter(
        &self,
        raw: &Raw,
        event_type: Option<&str>,
        reason: &str,
        shutdown: &CancellationToken,
    ) -> bool {
        tracing::error!(error = reason, "dead-lettering record");
        let mut attempt = 0;
        loop {
            let result: Result<(), sqlx::Error> = async {
                let mut tx = self.pool.begin().await?;
                dead_letter::park(&mut tx, &self.name, raw, event_type, reason).await?;
                tx.commit().await
            }
            .await;
            match result {
                Ok(()) => {
                    self.waker.wake();
                    crate::base::metrics::get()
                        .dead_letters
                        .with_label_values(&[self.name.as_str(), raw.topic.as_str()])
                        .inc();
                    count(&self.name, &raw.topic, "dead_lettered");
                    return true;
                }
                Err(e) => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "dead-lettering failed, retrying");
                    if !sleep_backoff(attempt, shutdown).await {
                        return false;
                    }
                }
            }
        }
    }
}

/// Exponential backoff with full jitter, capped at 10 s. False when stopped.
async fn sleep_backoff(attempt: u32, shutdown: &CancellationToken) -> bool {
    let cap = Duration::from_millis(50 * 2u64.saturating_pow(attempt.min(8))).min(Duration::from_secs(10));
    let wait = cap.mul_f64(rand::rng().random_range(0.5..1.0));
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = shutdown.cancelled() => false,
    }
}
