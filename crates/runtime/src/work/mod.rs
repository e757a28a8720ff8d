//! Durable work: the one loop of every worker that takes its work from the
//! database (the outbox relay, the warehouse's pickers, the notification
//! dispatcher, payment's provider calls).
//!
//! A worker listens for commits before it looks for work, so a commit in
//! between is not missed; claims its work (`FOR UPDATE SKIP LOCKED`, so a
//! crash returns it to the queue and two workers never take the same), in
//! one statement committed at once when it leases the work, or in a
//! transaction it keeps while working; works it and commits; and when
//! nothing is due sleeps until a commit wakes it or the work it knows of
//! falls due. After its work it looks again only when its claim said to. A failure backs off (100 ms
//! doubling to 5 s) and the loop goes on; shutdown lets the work in hand
//! finish. The work carries the trace context saved with it, which the worker
//! resumes (`TraceContext::attach`), so the trace of the order that queued it
//! goes on through it.
//!
//! What a worker does is its [`Worker`] implementation; how it waits, wakes,
//! backs off and stops is here, once. Which commits wake whom is [`wake`]
//! (the transactions that queue work call [`note_work`]); a worker stopped
//! in the middle of leased work gives it back with [`hand_back`]. This layer
//! stands on `crate::base` alone.

use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

pub mod hand_back;
pub mod wake;

pub use wake::{note_outbox, note_work, noting, OutboxWaker, Wakes, Written};

/// What a look for work found.
pub enum Claimed<W> {
    /// Work in hand, and what to do after it.
    Work { work: W, then: Then },
    /// Nothing due: wait this long at most, or until a commit wakes the worker.
    Wait(Duration),
}

/// What a worker does after the work it claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Nothing else was due when it was claimed: wait for a commit, at most
    /// this long. The relay, which read every row there was; a provider
    /// caller or a picker whose claim found nothing more due. Work queued
    /// meanwhile is not missed: the worker listened before it looked, and
    /// a wake that found it busy was handed on or kept for its next listen.
    Wait(Duration),
    /// Look again at once: its own work may be what falls due next (a
    /// packed parcel ships later), and only a look finds out when.
    LookAgain,
    /// More is due now: wake an idle worker to take it, and look again.
    WakeAnother,
}

/// One kind of durable work.
#[async_trait]
pub trait Worker: Send + Sync + 'static {
    /// Work claimed and not yet done: typically its open transaction holding
    /// the claimed rows' locks, and what they say.
    type Work: Send;

    /// Names the worker in logs and metrics.
    fn name(&self) -> &'static str;

    /// Looks for work.
    async fn claim(&self) -> Result<Claimed<Self::Work>>;

    /// Does claimed work and commits it.
    async fn work(&self, work: Self::Work) -> Result<()>;

    /// After a failed claim or work, before backing off: give up whatever
    /// may be broken (a leader's lock on a lost connection, say).
    async fn failed(&self) {}

    /// After shutdown, once nothing is in hand: finish what must not wait
    /// for the next start (the relay publishes what is left).
    async fn stopped(&self) {}
}

static FAILURES: std::sync::LazyLock<prometheus::IntCounterVec> = std::sync::LazyLock::new(|| {
    crate::base::metrics::counter_vec(
        "omnisaga_worker_failures_total",
        "Failed looks for work and failed pieces of work, per worker; each is retried after a back-off",
        &["worker"],
    )
});

/// First wait after a failure; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Runs `worker` until `shutdown`, woken by the commits `wakes` names.
pub async fn run<W: Worker>(
    worker: W,
    waker: OutboxWaker,
    wakes: Wakes,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut backoff = FIRST_BACKOFF;
    while !shutdown.is_cancelled() {
        // Listening before looking: work committed meanwhile wakes it at once.
        let mut committed = Box::pin(waker.listen(wakes));
        committed.as_mut().enable();
        let outcome = match worker.claim().await {
            Ok(Claimed::Work { work, then }) => {
                // Busy from here on: a wake must reach an idle worker, and
                // dropping the listener hands on one it already got.
                drop(committed);
                if then == Then::WakeAnother {
                    waker.pass_on();
                }
                match worker.work(work).await {
                    Ok(()) => match then {
                        Then::Wait(most) => Ok(Some(most)),
                        Then::LookAgain | Then::WakeAnother => Ok(None),
                    },
                    Err(e) => Err(e),
                }
            }
            Ok(Claimed::Wait(most)) => {
                tokio::select! {
                    _ = committed => {},
                    _ = tokio::time::sleep(most) => {},
                    _ = shutdown.cancelled() => {},
                }
                Ok(None)
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(wait) => {
                backoff = FIRST_BACKOFF;
                if let Some(most) = wait {
                    // A commit during the work left its wake for this listener.
                    tokio::select! {
                        _ = waker.listen(wakes) => {},
                        _ = tokio::time::sleep(most) => {},
                        _ = shutdown.cancelled() => {},
                    }
                }
            }
            Err(e) => {
                FAILURES.with_label_values(&[worker.name()]).inc();
                tracing::warn!(worker = worker.name(), error = %format!("{e:#}"), "{} failed, retrying", worker.name());
                worker.failed().await;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {},
                    _ = shutdown.cancelled() => {},
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    worker.stopped().await;
    tracing::info!(worker = worker.name(), "{} stopped", worker.name());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    };

    use super::*;

    /// A queue in memory: each claim takes the next script entry.
    struct Scripted {
        script: Mutex<Vec<Step>>,
        worked: Arc<AtomicUsize>,
        claims: Arc<AtomicUsize>,
        stopped: Arc<AtomicUsize>,
        /// Woken by each piece of work, as a commit queueing more would.
        queues: Option<OutboxWaker>,
    }

    enum Step {
        Work(Then),
        Wait(Duration),
        Fail,
    }

    impl Scripted {
        fn new(mut script: Vec<Step>) -> Self {
            script.reverse();
            Self {
                script: Mutex::new(script),
                worked: Arc::default(),
                claims: Arc::default(),
                stopped: Arc::default(),
                queues: None,
            }
        }
    }

    #[async_trait]
    impl Worker for Scripted {
        type Work = ();
        fn name(&self) -> &'static str {
            "scripted"
        }
        async fn claim(&self) -> Result<Claimed<()>> {
            self.claims.fetch_add(1, Ordering::SeqCst);
            match self.script.lock().unwrap().pop() {
                Some(Step::Work(then)) => Ok(Claimed::Work { work: (), then }),
                Some(Step::Wait(most)) => Ok(Claimed::Wait(most)),
                Some(Step::Fail) => anyhow::bail!("the queue is gone"),
                None => Ok(Claimed::Wait(Duration::from_secs(3600))),
            }
        }
        async fn work(&self, (): ()) -> Result<()> {
            self.worked.fetch_add(1, Ordering::SeqCst);
            if let Some(waker) = &self.queues {
                waker.wake();
            }
            Ok(())
        }
        async fn stopped(&self) {
            self.stopped.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Waits until `counter` reaches `n`; a worker that never gets there
    /// fails the test instead of hanging it.
    async fn reaches(counter: &AtomicUsize, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while counter.load(Ordering::SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("stuck at {} of {n}", counter.load(Ordering::SeqCst)));
    }

    /// Lets every task that can run on this single-threaded runtime run.
    async fn settle() {
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn work_that_may_make_more_due_is_followed_by_another_look() {
        let worker = Scripted::new(vec![Step::Work(Then::LookAgain), Step::Work(Then::WakeAnother)]);
        let (worked, claims) = (worker.worked.clone(), worker.claims.clone());
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(run(worker, OutboxWaker::default(), Wakes::Work, shutdown.clone()));
        reaches(&claims, 3).await;
        assert_eq!(worked.load(Ordering::SeqCst), 2, "both worked without waiting");
        shutdown.cancel();
        running.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn after_reading_everything_it_waits_for_a_commit() {
        let worker = Scripted::new(vec![Step::Work(Then::Wait(Duration::from_secs(3600)))]);
        let claims = worker.claims.clone();
        let waker = OutboxWaker::default();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(run(worker, waker.clone(), Wakes::Outbox, shutdown.clone()));
        reaches(&claims, 1).await;
        settle().await;
        assert_eq!(claims.load(Ordering::SeqCst), 1, "no look without a commit");
        waker.wake();
        reaches(&claims, 2).await;
        shutdown.cancel();
        running.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn work_queued_while_it_worked_brings_a_worker_that_waits_after_it_back() {
        let mut worker = Scripted::new(vec![Step::Work(Then::Wait(Duration::from_secs(3600)))]);
        let waker = OutboxWaker::default();
        worker.queues = Some(waker.clone());
        let claims = worker.claims.clone();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(run(worker, waker, Wakes::Work, shutdown.clone()));
        // Its poll is an hour away: only the wake kept while it worked can
        // bring the next look.
        reaches(&claims, 2).await;
        shutdown.cancel();
        running.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_commit_wakes_a_waiting_worker_before_its_poll() {
        let worker = Scripted::new(vec![Step::Wait(Duration::from_secs(3600))]);
        let claims = worker.claims.clone();
        let waker = OutboxWaker::default();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(run(worker, waker.clone(), Wakes::Work, shutdown.clone()));
        reaches(&claims, 1).await;
        // Its poll is an hour away: only the wake can bring the next look.
        waker.wake();
        reaches(&claims, 2).await;
        shutdown.cancel();
        running.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_failure_backs_off_doubling_and_then_goes_on() {
        let worker = Scripted::new(vec![Step::Fail, Step::Fail, Step::Work(Then::LookAgain)]);
        let (worked, claims) = (worker.worked.clone(), worker.claims.clone());
        let shutdown = CancellationToken::new();
        let start = std::time::Instant::now();
        let running = tokio::spawn(run(worker, OutboxWaker::default(), Wakes::Work, shutdown.clone()));
        reaches(&worked, 1).await;
        // 100 ms after the first failure, 200 ms after the second.
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(300), "backed off {waited:?}");
        assert!(waited < Duration::from_secs(5), "backed off {waited:?}");
        assert!(claims.load(Ordering::SeqCst) >= 3, "worked at the third look");
        assert!(FAILURES.with_label_values(&["scripted"]).get() >= 2);
        shutdown.cancel();
        running.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn shutdown_ends_the_wait_and_runs_the_last_step() {
        let worker = Scripted::new(vec![]);
        let (claims, stopped) = (worker.claims.clone(), worker.stopped.clone());
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(run(worker, OutboxWaker::default(), Wakes::Work, shutdown.clone()));
        reaches(&claims, 1).await;
        shutdown.cancel();
        running.await.unwrap().unwrap();
        assert_eq!(stopped.load(Ordering::SeqCst), 1);
    }
}
