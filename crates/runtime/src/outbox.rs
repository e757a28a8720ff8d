//! The transactional outbox. Rows are written in the business transaction;
//! the relay publishes them with the idempotent producer in id order and marks
//! a row published only after its delivery report.
//!
//! The relay keeps no watermark: every pass reads all rows not yet published,
//! so a row whose transaction commits late (a lower id committing after a
//! higher one) is published on the next pass instead of being skipped. A
//! key whose send failed is left out of the passes for a while
//! (`outbox/held.rs`), so rows of an unavailable partition, always the
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

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result};
use futures::future::join_all;
use omnisaga_proto::v1::Envelope;
use prost::Message;
use rdkafka::message::{Header, OwnedHeaders};
use sqlx::{pool::PoolConnection, PgConnection, PgPool, Postgres, Row};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::{
    event::TraceContext,
    work::{Claimed, Then, Wakes, Worker},
};

mod held;

/// Content type header value of every business event.
pub const CONTENT_TYPE: &str = "application/x-protobuf; messageType=omnisaga.v1.Envelope";

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
    pub fn listen(&self, wakes: crate::work::Wakes) -> tokio::sync::futures::Notified<'_> {
        match wakes {
            crate::work::Wakes::Outbox => self.0.notified(),
            crate::work::Wakes::Work => self.1.notified(),
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

/// Runs `f`, noting whether it wrote outbox rows ([`enqueue`] notes them) or
/// queued work ([`note_work`]), for [`OutboxWaker::wake_for`]. Outside it
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

pub(crate) fn note_outbox() {
    let _ = WRITES.try_with(|w| {
        w.set(Written {
            outbox: true,
            ..w.get()
        })
    });
}

/// Writes `envelope` to the outbox for `topic`, keyed by its order id, in
/// the caller's transaction.
pub async fn enqueue(
    conn: &mut PgConnection,
    topic: &str,
    envelope: &Envelope,
    trace: &TraceContext,
) -> Result<(), sqlx::Error> {
    enqueue_raw(
        conn,
        topic,
        &envelope.order_id,
        &envelope.encode_to_vec(),
        &headers(envelope, trace),
    )
    .await
}

/// The Kafka headers of a business event: its type, the content type and
/// the trace context of the transaction that wrote it.
pub fn headers(envelope: &Envelope, trace: &TraceContext) -> BTreeMap<String, String> {
    let mut headers = BTreeMap::new();
    headers.insert("event_type".to_owned(), envelope.event_type.clone());
    headers.insert("content-type".to_owned(), CONTENT_TYPE.to_owned());
    if let Some(tp) = &trace.traceparent {
        headers.insert("traceparent".to_owned(), tp.clone());
    }
    if let Some(ts) = &trace.tracestate {
        headers.insert("tracestate".to_owned(), ts.clone());
    }
    headers
}

/// Writes any record (a dead letter, say) to the outbox.
pub async fn enqueue_raw(
    conn: &mut PgConnection,
    topic: &str,
    key: &str,
    payload: &[u8],
    headers: &BTreeMap<String, String>,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO outbox (topic, message_key, payload, headers) VALUES ($1, $2, $3, $4)")
        .bind(topic)
        .bind(key)
        .bind(payload)
        .bind(sqlx::types::Json(headers))
        .execute(conn)
        .instrument(crate::db::span("INSERT outbox"))
        .await?;
    note_outbox();
    Ok(())
}

/// Rows waiting to be published (the outbox backlog).
pub async fn backlog(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
}

/// Publishes outbox rows until `shutdown`, then drains what is left.
pub struct Relay {
    pub pool: PgPool,
    pub producer: crate::kafka::Producer,
    pub waker: OutboxWaker,
    pub poll: Duration,
    pub batch: i64,
    /// Advisory lock key shared by every replica of one service.
    pub lock_key: i64,
    /// Inbox rows older than this are pruned (`CommonConfig::inbox_retention`).
    pub inbox_retention: Duration,
}

/// What one pass's sends came to.
#[derive(Default)]
struct Published {
    /// The ids of the rows delivered.
    delivered: Vec<i64>,
    /// The keys all of whose rows were delivered.
    delivered_keys: Vec<String>,
    /// The keys whose send failed (their later rows were held back).
    failed_keys: Vec<String>,
    first_error: Option<String>,
}

struct Row_ {
    id: i64,
    topic: String,
    key: String,
    payload: Vec<u8>,
    headers: BTreeMap<String, String>,
    /// How old the row was when it was read, by the database's clock (which
    /// stamped `created_at`), and when that was, by the monotonic clock: an
    /// instance whose wall clock is off measures the right latency.
    age_at_read: f64,
    read: std::time::Instant,
}

impl Relay {
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let waker = self.waker.clone();
        let leader = Leader {
            relay: self,
            lock: tokio::sync::Mutex::new(None),
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
    /// The connection holding the advisory lock, once this replica leads.
    lock: tokio::sync::Mutex<Option<PoolConnection<Postgres>>>,
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
                *lock = Some(conn);
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
        // A full batch may have left rows behind; a short one read them all.
        let then = if rows.len() as i64 == relay.batch {
            Then::LookAgain
        } else {
            Then::Wait(relay.poll)
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
                    *lock = Some(conn);
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

/// Longest the leader waits for its lock connection to answer before it
/// takes the lead for lost: a connection that hangs (a network partition)
/// may already have lost its lock on the server's side.
const LEAD_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

impl Leader {
    /// Up to one batch of the rows not yet published, oldest first, read on
    /// the lock connection itself: that it answers is the check that this
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
        match tokio::time::timeout(LEAD_CHECK_TIMEOUT, self.relay.unpublished(conn, &held)).await {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(e)) => Err(lost(e)),
            Err(_) => Err(lost(anyhow::anyhow!(
                "the lock connection did not answer within {LEAD_CHECK_TIMEOUT:?}"
            ))),
        }
    }

    /// Publishes `rows` and marks the delivered ones published on the lock
    /// connection, so only a relay that still leads marks rows: a lead lost
    /// while publishing leaves them to the next leader (delivered twice, as
    /// after a crash; the consumers' inboxes drop the second).
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
            crate::failpoint::hit(crate::failpoint::RELAY_ACKED);
            let mut lock = self.lock.lock().await;
            let conn = lock.as_mut().context("the relay does not lead")?;
            let marked = sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
                .bind(&delivered)
                .execute(&mut **conn);
            match tokio::time::timeout(LEAD_CHECK_TIMEOUT, marked).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(lost(e.into())),
                Err(_) => return Err(lost(anyhow::anyhow!("the lock connection did not answer"))),
            }
        }
        match first_error {
            Some(e) => anyhow::bail!("Failed to publish outbox rows: {e}"),
            None => Ok(delivered.len()),
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
        if let Some(mut conn) = self.lock.lock().await.take() {
            if self.relay.unlock(&mut conn).await.is_err() {
                conn.close_on_drop();
            }
        }
    }
}

static LEAD_LOST: std::sync::LazyLock<prometheus::IntCounterVec> = std::sync::LazyLock::new(|| {
    crate::metrics::counter_vec(
        "omnisaga_outbox_leadership_lost_total",
        "Times this instance's outbox relay found its lock connection gone while leading, and resigned",
        &[],
    )
});

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

    /// Up to one batch of the rows not yet published, oldest first, but for
    /// the keys `held` back, read on `conn` (the leader's lock connection).
    async fn unpublished(&self, conn: &mut PgConnection, held: &[String]) -> Result<Vec<Row_>> {
        let rows = sqlx::query(
            "SELECT id, topic, message_key, payload, headers,
                    EXTRACT(EPOCH FROM clock_timestamp() - created_at)::float8 FROM outbox
             WHERE published_at IS NULL AND message_key <> ALL($2) ORDER BY id LIMIT $1",
        )
        .bind(self.batch)
        .bind(held)
        .fetch_all(conn)
        .await?;
        let read = std::time::Instant::now();
        Ok(rows
            .into_iter()
            .map(|r| Row_ {
                id: r.get(0),
                topic: r.get(1),
                key: r.get(2),
                payload: r.get(3),
                headers: r.get::<sqlx::types::Json<BTreeMap<String, String>>, _>(4).0,
                age_at_read: r.get(5),
                read,
            })
            .collect())
    }

    /// Publishes `rows`; returns what was delivered and what failed.
    /// Keys go out side by side, but each key's rows one at a
    /// time in id order, and a key's first failure holds back its later rows
    /// until the next pass: records of one key in flight together can be
    /// reordered when one fails and the producer retries it after the next
    /// (librdkafka bumps the idempotent producer's epoch on a delivery
    /// timeout), and a later row must never reach the topic before an
    /// earlier one of the same order.
    async fn publish(&self, rows: Vec<Row_>) -> Published {
        let mut by_key: Vec<Vec<Row_>> = Vec::new();
        let mut slot: HashMap<String, usize> = HashMap::new();
        for row in rows {
            match slot.get(&row.key) {
                Some(&i) => by_key[i].push(row),
                None => {
                    slot.insert(row.key.clone(), by_key.len());
                    by_key.push(vec![row]);
                }
            }
        }
        let chains = by_key.into_iter().map(|rows| async move {
            let key = rows.first().map(|r| r.key.clone()).unwrap_or_default();
            let mut delivered = Vec::with_capacity(rows.len());
            for row in rows {
                match self.send(row).await {
                    Ok(id) => delivered.push(id),
                    Err(e) => return (key, delivered, Some(e)),
                }
            }
            (key, delivered, None)
        });
        let mut published = Published::default();
        for (key, ids, error) in join_all(chains).await {
            published.delivered.extend(ids);
            match error {
                Some(e) => {
                    published.failed_keys.push(key);
                    published.first_error.get_or_insert(e);
                }
                None => published.delivered_keys.push(key),
            }
        }
        published
    }

    /// Sends one row and waits for the broker's acknowledgement; its id once
    /// delivered.
    async fn send(&self, row: Row_) -> Result<i64, String> {
        // One producer span per record, child of the transaction that wrote
        // it; the consumer continues from this span.
        let span = tracing::info_span!(
            "publish",
            otel.name = %format!("publish {}", row.topic),
            otel.kind = "producer",
            messaging.system = "kafka",
            messaging.operation.type = "publish",
            messaging.destination.name = %row.topic,
            messaging.kafka.message.key = %row.key,
            event.type = row.headers.get("event_type").map(String::as_str).unwrap_or(""),
            order.id = %row.key,
            messaging.destination.partition.id = tracing::field::Empty,
            messaging.kafka.offset = tracing::field::Empty,
        );
        let stored = TraceContext {
            traceparent: row.headers.get("traceparent").cloned(),
            tracestate: row.headers.get("tracestate").cloned(),
        };
        stored.attach(&span);
        let carried = span.in_scope(TraceContext::current);
        let mut headers = OwnedHeaders::new_with_capacity(row.headers.len());
        for (k, v) in &row.headers {
            let v = match k.as_str() {
                "traceparent" => carried.traceparent.as_deref().unwrap_or(v),
                _ => v,
            };
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let delivery = self
            .producer
            .send(&row.topic, &row.key, &row.payload, Some(headers))
            .map_err(|e| e.to_string())?;
        let (partition, offset) = delivery.await.map_err(|e| e.to_string())?;
        span.record("messaging.destination.partition.id", partition);
        span.record("messaging.kafka.offset", offset);
        let m = crate::metrics::get();
        m.outbox_published.with_label_values(&[row.topic.as_str()]).inc();
        let waited = row.age_at_read + row.read.elapsed().as_secs_f64();
        m.outbox_latency
            .with_label_values(&[row.topic.as_str()])
            .observe(waited.max(0.0));
        Ok(row.id)
    }

    /// Deletes outbox rows published more than an hour ago, and inbox rows
    /// older than the inbox retention, at most `PRUNE_BATCHES` batches of
    /// `PRUNE_BATCH` a pass so publishing never waits long (a large backlog
    /// goes over several passes).
    async fn prune(&self) -> Result<()> {
        const PRUNE_BATCH: i64 = 5000;
        const PRUNE_BATCHES: usize = 20;
        sqlx::query("DELETE FROM outbox WHERE published_at < now() - interval '1 hour'")
            .execute(&self.pool)
            .await?;
        for _ in 0..PRUNE_BATCHES {
            let pruned = sqlx::query(
                "DELETE FROM inbox WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM inbox WHERE processed_at < now() - make_interval(secs => $1) LIMIT $2))",
            )
            .bind(self.inbox_retention.as_secs_f64())
            .bind(PRUNE_BATCH)
            .execute(&self.pool)
            .await?
            .rows_affected();
            crate::metrics::get().inbox_pruned.inc_by(pruned);
            if pruned < PRUNE_BATCH as u64 {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Starts `n` workers that each wait for one commit, returning how many
    /// were woken so far.
    async fn waiting_workers(waker: &OutboxWaker, n: usize) -> Arc<AtomicUsize> {
        let woken = Arc::new(AtomicUsize::new(0));
        for _ in 0..n {
            let (waker, woken) = (waker.clone(), woken.clone());
            let (listening, ready) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                let committed = waker.listen(crate::work::Wakes::Work);
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
        let next = tokio::time::timeout(Duration::from_secs(5), waker.listen(crate::work::Wakes::Work)).await;
        assert!(next.is_ok(), "the wake was kept");
    }

    #[tokio::test]
    async fn a_woken_worker_that_found_work_hands_its_wake_on() {
        let waker = OutboxWaker::default();
        // A busy worker listens before it looks for work, and finds some.
        let mut busy = Box::pin(waker.listen(crate::work::Wakes::Work));
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
            waker.listen(crate::work::Wakes::Work).now_or_never().is_some(),
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
