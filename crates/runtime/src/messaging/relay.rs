//! The outbox relay: it publishes the outbox's rows with the idempotent
//! producer in id order and marks a row published only after its delivery
//! report.
//!
//! The relay keeps no watermark: every pass reads all rows not yet published,
//! so a row whose transaction commits late (a lower id committing after a
//! higher one) is published on the next pass instead of being skipped. A
//! key whose send failed is left out of the passes for a while
//! (`relay/held.rs`), so rows of an unavailable partition, always the
//! oldest, cannot fill every pass and starve the others. Rows of
//! one order always come from transactions serialized by that order's stream
//! version, so per-key order is commit order. Only one relay per database
//! publishes at a time (a PostgreSQL advisory lock held by its connection;
//! the others try for it every poll, so one takes over within a poll of the
//! leader's death). The leader reads each pass's rows and marks them on
//! that lock connection, so a leader whose connection was cut (and whose
//! lock went with it) fails its next pass and resigns instead of
//! publishing beside its successor. It is woken in process after a commit, never by a
//! NOTIFY inside the business transaction; a commit in an instance that
//! does not lead reaches it by a NOTIFY that instance sends afterwards
//! (`omnisaga_outbox_wake`).
//!
//! A pass is one statement: it marks the rows the previous pass delivered
//! and reads the next ones. Marks are bookkeeping, not business data, so
//! the lock connection commits them without waiting for the disk
//! (`synchronous_commit = off`, that session only): a mark lost to a crash,
//! or one still pending when the lead is lost, only has its row published
//! again, which the consumers' inboxes drop, as after any crash between a
//! send and its mark. A pass that published rows is followed by the next,
//! which marks them, at the next commit's wake or 50 ms later at most.

use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::{pool::PoolConnection, Connection as _, PgConnection, PgPool, Postgres};
use tokio_util::sync::CancellationToken;

use crate::{
    messaging::consumer::inbox,
    work::{Claimed, OutboxWaker, Then, Wakes, Worker},
};

mod held;
mod publish;

use publish::{Published, Row_};

/// Publishes outbox rows until `shutdown`, then drains what is left.
pub struct Relay {
    pub pool: PgPool,
    pub producer: crate::messaging::kafka::Producer,
    pub waker: OutboxWaker,
    pub poll: Duration,
    pub batch: i64,
    /// Advisory lock key shared by every replica of one service.
    pub lock_key: i64,
    /// Inbox rows older than this are pruned (`CommonConfig::inbox_retention`).
    pub inbox_retention: Duration,
}

impl Relay {
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let waker = self.waker.clone();
        let leader = Leader {
            relay: self,
            lock: tokio::sync::Mutex::new(None),
            delivered: Default::default(),
            listener: std::sync::Mutex::new(None),
            passes: std::sync::atomic::AtomicU64::new(0),
            held: Default::default(),
        };
        crate::work::run(leader, waker, Wakes::Outbox, shutdown).await
    }
}

/// The channel on which an instance that does not lead tells the leader
/// that it committed outbox rows (per database, so per service).
const WAKE_CHANNEL: &str = "omnisaga_outbox_wake";

/// The relay as a [`Worker`]: it publishes only while it holds the leader
/// lock, on a connection of its own, so one replica of a service publishes
/// at a time and in id order.
///
/// A commit wakes its own instance's relay. In an instance that does not
/// lead, that wake is passed on: a `NOTIFY` on [`WAKE_CHANNEL`], sent after
/// the commit and outside the business transaction (one at a time, so a
/// burst of commits sends a few, not one each), which the leader `LISTEN`s
/// for. Without it, rows committed by the other instances would wait for
/// the leader's poll: a second a hop.
struct Leader {
    relay: Relay,
    /// The connection holding the advisory lock, once this replica leads
    /// (out of the pool: its session commits without waiting for the disk).
    lock: tokio::sync::Mutex<Option<PgConnection>>,
    /// Rows delivered and not marked yet: the next pass marks them.
    delivered: std::sync::Mutex<Vec<i64>>,
    /// While leading: the task listening for the other instances' commits.
    listener: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    passes: std::sync::atomic::AtomicU64,
    /// Keys whose last send failed, left out of the passes for a while.
    held: std::sync::Mutex<held::HeldKeys>,
}

#[async_trait::async_trait]
impl Worker for Leader {
    type Work = Vec<Row_>;

    fn name(&self) -> &'static str {
        "outbox relay"
    }

    /// The oldest rows not yet published, once this replica leads; while
    /// another does, a look now and then whether it still does.
    async fn claim(&self) -> Result<Claimed<Vec<Row_>>> {
        let relay = &self.relay;
        {
            let mut lock = self.lock.lock().await;
            if lock.is_none() {
                let mut conn = relay
                    .pool
                    .acquire()
                    .await
                    .context("Failed to acquire a connection")?;
                if !relay.try_lock(&mut conn).await? {
                    // Another instance leads: tell it this one committed
                    // rows (this look follows a commit, or the poll). Should
                    // it die, its lock goes with its connection and this one
                    // takes over within a poll.
                    sqlx::query("SELECT pg_notify($1, '')")
                        .bind(WAKE_CHANNEL)
                        .execute(&mut *conn)
                        .await?;
                    return Ok(Claimed::Wait(relay.poll));
                }
                tracing::info!("this instance's outbox relay leads");
                *lock = Some(lead(conn).await?);
                self.listen();
            }
        }
        // Housekeeping on the first pass as leader and every 1000th after.
        let passes = self.passes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if passes.is_multiple_of(1000) {
            relay.prune().await?;
        }
        let rows = self.unpublished().await?;
        if rows.is_empty() {
            return Ok(Claimed::Wait(relay.poll));
        }
        // The next pass marks what this one delivers: at once after a full
        // batch (it may have left rows behind), else at the next commit's
        // wake, which under load comes within milliseconds and brings rows
        // to read in the same statement, or after MARK_WITHIN at most.
        let then = if rows.len() as i64 == relay.batch {
            Then::LookAgain
        } else {
            Then::Wait(relay.poll.min(MARK_WITHIN))
        };
        Ok(Claimed::Work { work: rows, then })
    }

    async fn work(&self, rows: Vec<Row_>) -> Result<()> {
        self.publish(rows).await.map(|_| ())
    }

    /// Gives the lead up: its connection may be the broken part, and a lock
    /// on a lost connection is no lock. A producer that had a fatal error
    /// refuses every record from then on: it is replaced.
    async fn failed(&self) {
        self.relay.producer.recover();
        self.resign().await;
    }

    /// A final drain, so a graceful stop leaves nothing unpublished.
    async fn stopped(&self) {
        let relay = &self.relay;
        let mut lock = self.lock.lock().await;
        if lock.is_none() {
            if let Ok(mut conn) = relay.pool.acquire().await {
                if relay.try_lock(&mut conn).await.unwrap_or(false) {
                    if let Ok(conn) = lead(conn).await {
                        *lock = Some(conn);
                    }
                }
            }
        }
        if lock.is_some() {
            drop(lock);
            while let Ok(rows) = self.unpublished().await {
                if rows.is_empty() || self.publish(rows).await.is_err() {
                    break;
                }
            }
            self.resign().await;
        }
    }
}

/// Longest a delivered row waits for its mark when no commit wakes the
/// relay sooner.
const MARK_WITHIN: Duration = Duration::from_millis(50);

/// Longest the leader waits for its lock connection to answer before it
/// takes the lead for lost: a connection that hangs (a network partition)
/// may already have lost its lock on the server's side.
const LEAD_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

impl Leader {
    /// Marks the rows the last pass delivered, and reads up to one batch of
    /// the rows not yet published, oldest first, on the lock connection
    /// itself: that it answers is the check that this
    /// replica still leads, at no extra round trip. The lock is a
    /// session-level advisory lock, which only that session can release
    /// (the relay unlocks only when it resigns) and which goes when the
    /// session ends; so a statement that completes on that session proves
    /// the lock is held. A connection that was cut fails the read, and the
    /// pass fails: [`Worker::failed`] resigns, and the next look tries for
    /// the lock again, behind whichever replica took it meanwhile.
    async fn unpublished(&self) -> Result<Vec<Row_>> {
        let mut lock = self.lock.lock().await;
        let conn = lock.as_mut().context("the relay does not lead")?;
        let held = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .held(std::time::Instant::now());
        // Taken for good: a pass that fails resigns, and its rows are then
        // published again by the next leader.
        let marks = std::mem::take(&mut *self.delivered.lock().unwrap_or_else(|e| e.into_inner()));
        let pass = self.relay.unpublished(conn, &held, &marks);
        match tokio::time::timeout(LEAD_CHECK_TIMEOUT, pass).await {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(e)) => Err(lost(e)),
            Err(_) => Err(lost(anyhow::anyhow!(
                "the lock connection did not answer within {LEAD_CHECK_TIMEOUT:?}"
            ))),
        }
    }

    /// Publishes `rows` and keeps the delivered ones for the next pass to
    /// mark published on the lock connection, so only a relay that still
    /// leads marks rows: a lead lost before leaves them to the next leader
    /// (delivered twice, as after a crash; the consumers' inboxes drop the
    /// second).
    async fn publish(&self, rows: Vec<Row_>) -> Result<usize> {
        let Published {
            delivered,
            delivered_keys,
            failed_keys,
            first_error,
        } = self.relay.publish(rows).await;
        self.held.lock().unwrap_or_else(|e| e.into_inner()).record(
            std::time::Instant::now(),
            failed_keys.iter().map(String::as_str),
            delivered_keys.iter().map(String::as_str),
        );
        if !delivered.is_empty() {
            crate::base::failpoint::hit(crate::base::failpoint::RELAY_ACKED);
            self.delivered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(&delivered);
        }
        match first_error {
            Some(e) => {
                // A failed pass resigns: what it delivered is marked first,
                // so the next leader does not send it again.
                self.mark_delivered().await?;
                anyhow::bail!("Failed to publish outbox rows: {e}")
            }
            None => Ok(delivered.len()),
        }
    }

    /// Marks the rows delivered since the last pass published, alone.
    async fn mark_delivered(&self) -> Result<()> {
        let marks = std::mem::take(&mut *self.delivered.lock().unwrap_or_else(|e| e.into_inner()));
        if marks.is_empty() {
            return Ok(());
        }
        let mut lock = self.lock.lock().await;
        let conn = lock.as_mut().context("the relay does not lead")?;
        let marked = sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
            .bind(&marks)
            .execute(&mut *conn);
        match tokio::time::timeout(LEAD_CHECK_TIMEOUT, marked).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(lost(e.into())),
            Err(_) => Err(lost(anyhow::anyhow!("the lock connection did not answer"))),
        }
    }

    /// Wakes this relay whenever another instance says it committed rows,
    /// until [`Leader::resign`]. A listener that loses its connection
    /// connects again (and listens again); a wake missed meanwhile is
    /// caught by the poll.
    fn listen(&self) {
        let (pool, waker) = (self.relay.pool.clone(), self.relay.waker.clone());
        let task = tokio::spawn(async move {
            loop {
                let listening = async {
                    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
                    listener.listen(WAKE_CHANNEL).await?;
                    loop {
                        listener.recv().await?;
                        waker.wake_relay();
                    }
                };
                let result: Result<(), sqlx::Error> = listening.await;
                if let Err(e) = result {
                    tracing::warn!(error = %e, "not listening for the other instances' commits; the poll covers");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        if let Some(old) = self
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(task)
        {
            old.abort();
        }
    }

    /// Releases the leader lock; a connection that cannot is closed, which
    /// releases it too.
    async fn resign(&self) {
        if let Some(task) = self.listener.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
        self.delivered.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if let Some(mut conn) = self.lock.lock().await.take() {
            // Closing the session releases the lock too.
            let _ = self.relay.unlock(&mut conn).await;
            let _ = conn.close().await;
        }
    }
}

static LEAD_LOST: std::sync::LazyLock<prometheus::IntCounterVec> = std::sync::LazyLock::new(|| {
    crate::base::metrics::counter_vec(
        "omnisaga_outbox_leadership_lost_total",
        "Times this instance's outbox relay found its lock connection gone while leading, and resigned",
        &[],
    )
});

/// The connection that won the lock, taken out of the pool for the lead:
/// its session commits the marks without waiting for the disk, a setting no
/// business transaction may inherit.
async fn lead(conn: PoolConnection<Postgres>) -> Result<PgConnection> {
    let mut conn = conn.detach();
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

/// The lead lost (its lock connection failed): counted and logged by the
/// caller's failure, after which the relay resigns.
fn lost(e: anyhow::Error) -> anyhow::Error {
    LEAD_LOST.with_label_values::<&str>(&[]).inc();
    e.context("the outbox relay's lock connection failed: it no longer leads")
}

impl Relay {
    /// Takes the leader lock if nobody holds it. The lock is the
    /// connection's: a leader that dies loses it as soon as the server sees
    /// its connection gone, at once when its process dies, and when its
    /// machine or network does, once TCP keepalives of this connection go
    /// unanswered (idle 10 s, then 3 probes 5 s apart: about 25 s, not the
    /// system's default two hours).
    async fn try_lock(&self, conn: &mut PgConnection) -> Result<bool> {
        sqlx::query(
            "SELECT set_config('tcp_keepalives_idle', '10', false),
                    set_config('tcp_keepalives_interval', '5', false),
                    set_config('tcp_keepalives_count', '3', false)",
        )
        .execute(&mut *conn)
        .await?;
        Ok(sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(self.lock_key)
            .fetch_one(conn)
            .await?)
    }

    async fn unlock(&self, conn: &mut PgConnection) -> Result<()> {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(self.lock_key)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Deletes outbox rows published more than an hour ago, and has the
    /// consumers' inbox pruned ([`inbox::prune`]): the leader's housekeeping,
    /// so one instance of a service does it.
    async fn prune(&self) -> Result<()> {
        sqlx::query("DELETE FROM outbox WHERE published_at < now() - interval '1 hour'")
            .execute(&self.pool)
            .await?;
        inbox::prune(&self.pool, self.inbox_retention).await?;
        Ok(())
    }
}
