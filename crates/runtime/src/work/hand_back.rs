//! Handing work back when a worker is stopped in the middle of it.
//!
//! A graceful stop aborts the work still in hand at the end of its share of
//! the grace period (`crate::boot::shutdown`). A worker that leased its work (a
//! provider call, messages being sent) would leave the lease to run out,
//! and the work would wait for it after the restart. A [`HandBack`] held
//! across the work gives the lease up instead, the moment the work is
//! dropped unfinished; the worker that takes it next does it again, under
//! the same idempotency key.

use futures::future::BoxFuture;

type GiveBack = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// Runs its give-back, on the runtime, if dropped before [`HandBack::keep`].
#[must_use = "dropped at once, it hands the work back at once"]
pub struct HandBack(Option<GiveBack>);

impl HandBack {
    /// Hands the work back with `give_back` unless kept.
    pub fn new<F>(give_back: F) -> Self
    where
        F: FnOnce() -> BoxFuture<'static, ()> + Send + 'static,
    {
        Self(Some(Box::new(give_back)))
    }

    /// The work was finished (or failed and was given up otherwise).
    pub fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for HandBack {
    fn drop(&mut self) {
        if let (Some(give_back), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(give_back());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use super::*;

    fn counting(given: &Arc<AtomicUsize>) -> HandBack {
        let given = given.clone();
        HandBack::new(move || {
            Box::pin(async move {
                given.fetch_add(1, Ordering::SeqCst);
            })
        })
    }

    #[tokio::test]
    async fn work_dropped_unfinished_is_handed_back_and_kept_work_is_not() {
        let given = Arc::new(AtomicUsize::new(0));
        counting(&given).keep();
        let task = tokio::spawn({
            let hand_back = counting(&given);
            async move {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                hand_back.keep();
            }
        });
        task.abort();
        let _ = task.await;
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while given.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("handed back");
        assert_eq!(given.load(Ordering::SeqCst), 1, "once, for the aborted work only");
    }
}
