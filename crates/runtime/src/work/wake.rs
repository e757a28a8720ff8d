//! The wakes of durable work: which commits wake whom. A commit wakes the
//! outbox relay if it wrote outbox rows and one idle worker if it queued
//! work; a transaction run inside [`noting`] records which it did
//! ([`note_outbox`], [`note_work`]), so its commit wakes only those it wrote
//! for ([`OutboxWaker::wake_for`]).

use std::sync::Arc;

use tokio::sync::Notify;

/// Wakes the relay after a commit, and one of the workers that wait for
/// committed work (the warehouse's pickers, the notification dispatcher).
/// Cheap to clone.
///
/// A commit wakes one worker, not all of them: a pool of idle workers woken
/// together would each look for work that at most one finds, a transaction
/// and a query per worker per commit. A worker that finds work passes the
/// wake on ([`OutboxWaker::pass_on`]), so a backlog still fans out to every
/// worker, one look at a time. And a commit wakes only whoever it wrote for
/// when its transaction ran inside [`noting`] ([`OutboxWaker::wake_for`]):
/// the consumers do, so the relay looks at the outbox only after a commit
/// that wrote to it, and a worker at its queue only after one that queued work.
#[derive(Debug, Clone, Default)]
pub struct OutboxWaker(Arc<Notify>, Arc<Notify>);

impl OutboxWaker {
    /// Call after the transaction that wrote outbox rows has committed.
    pub fn wake(&self) {
        self.0.notify_one();
        self.1.notify_one();
    }

    /// Completes at the next commit `wakes` names, the relay's or a
    /// worker's (at once if one came while nobody was waiting); `enable` it
    /// before looking for work so a commit in between is not missed.
    /// Dropped unpolled after a wake reached it while it was listening, it
    /// hands the wake to another listening worker: a worker that found work
    /// drops it before working, so wakes go to the idle.
    pub fn listen(&self, wakes: Wakes) -> tokio::sync::futures::Notified<'_> {
        match wakes {
            Wakes::Outbox => self.0.notified(),
            Wakes::Work => self.1.notified(),
        }
    }

    /// Wakes the relay only: a commit in another instance of the service
    /// wrote outbox rows (the leader hears of it through PostgreSQL).
    pub fn wake_relay(&self) {
        self.0.notify_one();
    }

    /// Wakes one more waiting worker: called by a worker that found work,
    /// since more may be waiting.
    pub fn pass_on(&self) {
        self.1.notify_one();
    }

    /// Call after a transaction run inside [`noting`] committed: wakes the
    /// relay if it wrote outbox rows and a worker if it queued work, nobody
    /// otherwise. A commit that wrote neither (most of what the order
    /// service's consumer applies, every fact the warehouse only records)
    /// then costs no look at the outbox or the queue.
    pub fn wake_for(&self, written: Written) {
        if written.outbox {
            self.0.notify_one();
        }
        if written.work {
            self.1.notify_one();
        }
    }
}

/// Which commits wake a worker (see [`OutboxWaker`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakes {
    /// Commits that wrote outbox rows: the relay, one per service.
    Outbox,
    /// Commits that queued work ([`note_work`]): one of a
    /// pool of workers, which passes the wake on when it finds more.
    Work,
}

/// What the transactions run inside [`noting`] wrote that somebody waits for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Outbox rows, for the relay.
    pub outbox: bool,
    /// Work for the workers waiting on [`OutboxWaker::listen`] (a pick
    /// task falling due, a message to send): noted with [`note_work`].
    pub work: bool,
}

impl Written {
    /// Outbox rows only: what a worker's own commit writes (it looks for
    /// its next piece of work itself).
    pub const OUTBOX: Written = Written {
        outbox: true,
        work: false,
    };
}

tokio::task_local! {
    static WRITES: std::cell::Cell<Written>;
}

/// Runs `f`, noting whether it wrote outbox rows ([`note_outbox`], called
/// for each row written) or queued work ([`note_work`]), for
/// [`OutboxWaker::wake_for`]. Outside it
/// nothing is noted, and callers wake everybody with [`OutboxWaker::wake`].
/// What a rolled-back attempt noted still counts: a wake too many is
/// harmless, one too few would leave a row waiting for the next poll.
pub async fn noting<F: std::future::Future>(f: F) -> (F::Output, Written) {
    WRITES
        .scope(std::cell::Cell::new(Written::default()), async {
            let out = f.await;
            (out, WRITES.with(|w| w.get()))
        })
        .await
}

/// Notes, inside [`noting`], that the transaction queued work a worker
/// waits for.
pub fn note_work() {
    let _ = WRITES.try_with(|w| {
        w.set(Written {
            work: true,
            ..w.get()
        })
    });
}

/// Notes, inside [`noting`], that the transaction wrote outbox rows
/// (`crate::es::outbox` does, for each row it writes).
pub fn note_outbox() {
    let _ = WRITES.try_with(|w| {
        w.set(Written {
            outbox: true,
            ..w.get()
        })
    });
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use super::*;

    /// Starts `n` workers that each wait for one commit, returning how many
    /// were woken so far.
    async fn waiting_workers(waker: &OutboxWaker, n: usize) -> Arc<AtomicUsize> {
        let woken = Arc::new(AtomicUsize::new(0));
        for _ in 0..n {
            let (waker, woken) = (waker.clone(), woken.clone());
            let (listening, ready) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                let committed = waker.listen(Wakes::Work);
                tokio::pin!(committed);
                committed.as_mut().enable();
                let _ = listening.send(());
                committed.await;
                woken.fetch_add(1, Ordering::SeqCst);
            });
            ready.await.expect("worker listening");
        }
        woken
    }

    /// Lets every task that can run on this single-threaded runtime run.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_commit_wakes_one_idle_worker_and_each_pass_on_one_more() {
        let waker = OutboxWaker::default();
        let woken = waiting_workers(&waker, 4).await;
        settle().await;
        assert_eq!(woken.load(Ordering::SeqCst), 0);

        waker.wake();
        settle().await;
        assert_eq!(woken.load(Ordering::SeqCst), 1, "one commit, one worker looks");

        waker.pass_on();
        settle().await;
        assert_eq!(woken.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_commit_while_every_worker_is_busy_is_kept_for_the_next_to_wait() {
        let waker = OutboxWaker::default();
        waker.wake();
        let next = tokio::time::timeout(Duration::from_secs(5), waker.listen(Wakes::Work)).await;
        assert!(next.is_ok(), "the wake was kept");
    }

    #[tokio::test]
    async fn a_woken_worker_that_found_work_hands_its_wake_on() {
        let waker = OutboxWaker::default();
        // A busy worker listens before it looks for work, and finds some.
        let mut busy = Box::pin(waker.listen(Wakes::Work));
        busy.as_mut().enable();
        let idle = waiting_workers(&waker, 1).await;
        waker.wake();
        settle().await;
        // Whichever of the two the wake went to, dropping the busy worker's
        // listener leaves it with the idle one.
        drop(busy);
        settle().await;
        assert_eq!(idle.load(Ordering::SeqCst), 1);
    }

    /// Whether a wake is waiting for the relay and for a worker.
    fn pending(waker: &OutboxWaker) -> (bool, bool) {
        use futures::FutureExt as _;
        (
            waker.0.notified().now_or_never().is_some(),
            waker.listen(Wakes::Work).now_or_never().is_some(),
        )
    }

    #[tokio::test]
    async fn a_commit_wakes_only_whoever_it_wrote_for() {
        let waker = OutboxWaker::default();
        let ((), written) = noting(async {}).await;
        assert_eq!(written, Written::default());
        waker.wake_for(written);
        assert_eq!(pending(&waker), (false, false), "nothing written, nobody woken");

        let ((), written) = noting(async { note_work() }).await;
        assert_eq!(
            written,
            Written {
                outbox: false,
                work: true
            }
        );
        waker.wake_for(written);
        assert_eq!(
            pending(&waker),
            (false, true),
            "work queued: a worker, not the relay"
        );

        let ((), written) = noting(async { note_outbox() }).await;
        waker.wake_for(written);
        assert_eq!(
            pending(&waker),
            (true, false),
            "outbox rows: the relay, no worker"
        );

        // Outside `noting` nothing is noted, and the callers wake everybody.
        note_work();
        waker.wake();
        assert_eq!(pending(&waker), (true, true));
    }

    #[tokio::test]
    async fn what_a_scope_notes_stays_in_it() {
        let (inner, outer) = noting(async {
            let ((), inner) = noting(async { note_work() }).await;
            inner
        })
        .await;
        assert!(inner.work);
        assert_eq!(outer, Written::default(), "a nested scope keeps its notes");
    }
}
