//! The Kafka consumer loop. For each record: decode the envelope, then in one
//! transaction record its event id in the inbox (a duplicate stops here) and
//! apply the handler; commit; only then store the offset. Records are handled
//! in the order received, so one order's events (one key, one partition) keep
//! their order. Records already fetched when one arrives (up to
//! `batch_max`) are applied in one transaction, one commit for all; if any
//! of them fails, the batch is rolled back and its records are handled one
//! by one as below, so a batch changes the cost and never the outcome.
//! Transient failures are retried with backoff and jitter without
//! moving on. A record that cannot be decoded, or that the handler rejects
//! `max_attempts` times, is dead-lettered (see [`crate::dead_letter`]): kept
//! in the service's database, copied to `<topic>.dlq` with the error in its
//! headers, and its key parked, so the order's later records queue behind it
//! until it is replayed. The loop goes on with other orders.

mod apply;
mod batch;
mod observe;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::Result;
use async_trait::async_trait;
use futures::FutureExt as _;
use omnisaga_proto::v1::Envelope;
use prost::Message as _;
use rand::Rng;
use rdkafka::{
    consumer::{CommitMode, Consumer as _},
    message::{BorrowedMessage, Headers, Message},
};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::observe::count;
use crate::{
    config::KafkaConfig,
    dead_letter,
    event::{event_id, TraceContext},
    kafka,
    outbox::OutboxWaker,
    store::StoreError,
};

/// One decoded record handed to a [`Handler`].
#[derive(Debug, Clone)]
pub struct Incoming {
    pub envelope: Envelope,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub trace: TraceContext,
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Infrastructure trouble or a concurrency conflict: retried until it passes.
    #[error("transient: {0:#}")]
    Transient(anyhow::Error),
    /// The event cannot be applied: retried a bounded number of times, then dead-lettered.
    #[error("rejected: {0:#}")]
    Rejected(anyhow::Error),
}

impl From<sqlx::Error> for HandlerError {
    /// Data exceptions and constraint violations (SQLSTATE classes 22 and
    /// 23) fail the same way on every try, so they are rejections: retried a
    /// bounded number of times, then dead-lettered instead of blocking the
    /// consumer forever. Everything else (connections, deadlocks, a database
    /// restarting) is transient.
    fn from(e: sqlx::Error) -> Self {
        let permanent = e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|code| code.starts_with("22") || code.starts_with("23"));
        if permanent {
            Self::Rejected(e.into())
        } else {
            Self::Transient(e.into())
        }
    }
}

impl From<StoreError> for HandlerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt(_) => Self::Rejected(e.into()),
            StoreError::Database(db) => db.into(),
            conflict @ StoreError::Conflict { .. } => Self::Transient(conflict.into()),
        }
    }
}

/// Applies one event in the consumer's transaction.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Called at most once per event id and consumer (the inbox filters
    /// duplicates); everything it writes commits with the inbox record.
    async fn handle(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError>;

    /// Whether the handler acts on events of `event_type` (the record's
    /// `event_type` header). A record it does not act on is passed over
    /// before any transaction: no inbox row, no commit, counted as
    /// `ignored`. `handle` must do nothing with such an event. The default
    /// takes every type.
    fn wants(&self, event_type: &str) -> bool {
        let _ = event_type;
        true
    }
}

/// A record as received, owned: what is kept when it is dead-lettered.
#[derive(Debug, Clone)]
pub struct Raw {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

impl Raw {
    fn from_message(msg: &BorrowedMessage<'_>) -> Self {
        let mut headers = BTreeMap::new();
        if let Some(h) = msg.headers() {
            for header in h.iter() {
                if let Some(v) = header.value.and_then(|v| std::str::from_utf8(v).ok()) {
                    headers.insert(header.key.to_owned(), v.to_owned());
                }
            }
        }
        Self {
            topic: msg.topic().to_owned(),
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default(),
            payload: msg.payload().unwrap_or_default().to_vec(),
            headers,
        }
    }

    pub fn trace(&self) -> TraceContext {
        TraceContext {
            traceparent: self.headers.get("traceparent").cloned(),
            tracestate: self.headers.get("tracestate").cloned(),
        }
    }

    pub fn incoming(&self, envelope: Envelope) -> Incoming {
        Incoming {
            envelope,
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
            trace: self.trace(),
        }
    }
}

/// What a consumer shares with its dead-letter tools: how to apply a record.
pub struct Applier<H> {
    /// Inbox and dead-letter name of this consumer (the service name).
    pub name: String,
    pub pool: PgPool,
    pub handler: Arc<H>,
    pub waker: OutboxWaker,
    pub max_attempts: u32,
}

/// How applying one record ended.
pub enum Applied {
    Done,
    /// The inbox had its event id: nothing was applied again.
    Duplicate,
    /// Its key is parked: the record was queued behind the earlier dead letter.
    Parked,
}

impl<H: Handler> Applier<H> {
    /// Parks `raw` as a dead letter, retrying until the database takes it.
    async fn dead_letter(
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
                    crate::metrics::get()
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

/// A consumer group member that feeds `topics` to its applier.
pub struct Consumer<H> {
    pub group: String,
    pub topics: Vec<String>,
    pub kafka: KafkaConfig,
    pub applier: Arc<Applier<H>>,
    /// Where the running consumer is published for the progress endpoint.
    pub slot: crate::progress::Slot,
    /// Most records applied in one transaction.
    pub batch_max: usize,
}

impl<H: Handler> Consumer<H> {
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let consumer = Arc::new(kafka::consumer(&self.kafka, &self.group)?);
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        self.slot.set(Some(consumer.clone()));
        tracing::info!(group = %self.group, topics = ?self.topics, "consumer started");
        loop {
            let msg = tokio::select! {
                m = consumer.recv() => m,
                _ = shutdown.cancelled() => break,
            };
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "kafka consumer error");
                    continue;
                }
            };
            // Whatever else is already fetched joins the batch; nothing waits for more.
            let mut batch = vec![msg];
            while batch.len() < self.batch_max {
                match consumer.recv().now_or_never() {
                    Some(Ok(m)) => batch.push(m),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "kafka consumer error");
                        break;
                    }
                    None => break,
                }
            }
            let raws: Vec<Raw> = batch.iter().map(|m| Raw::from_message(m)).collect();
            if !self.process_all(raws, &shutdown).await {
                break;
            }
            for msg in &batch {
                // After a rebalance took the partition away the store fails;
                // its new owner redelivers the record and the inbox drops it.
                if let Err(e) = consumer.store_offset_from_message(msg) {
                    tracing::warn!(error = %e, partition = msg.partition(), "offset not stored");
                }
            }
        }
        self.slot.set(None);
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "no offsets to commit at shutdown");
        }
        tracing::info!(group = %self.group, "consumer stopped");
        Ok(())
    }

    /// Handles every record to the end, in order; false when stopped before that.
    async fn process_all(&self, raws: Vec<Raw>, shutdown: &CancellationToken) -> bool {
        // Records of a type the handler never acts on cost no transaction,
        // but still make their hop of the order's trace: a process span,
        // ended at once. A record without the header goes the whole way (and
        // is dead-lettered if it is not an event at all).
        let name = self.applier.name.as_str();
        let raws: Vec<Raw> = raws
            .into_iter()
            .filter(|raw| match raw.headers.get("event_type") {
                Some(t) if !self.applier.handler.wants(t) => {
                    drop(self.record_span(raw, decode(&raw.payload).ok().as_ref()));
                    count(name, &raw.topic, "ignored");
                    false
                }
                _ => true,
            })
            .collect();
        if raws.len() > 1 && self.try_batch(&raws).await {
            return true;
        }
        for raw in raws {
            if !self.process(raw, shutdown).await {
                return false;
            }
        }
        true
    }

    /// Handles one record to the end; false when stopped before that.
    async fn process(&self, raw: Raw, shutdown: &CancellationToken) -> bool {
        let decoded = decode(&raw.payload);
        let span = self.record_span(&raw, decoded.as_ref().ok());
        let started = std::time::Instant::now();
        let done = async {
            match decoded {
                Ok(envelope) => {
                    self.apply_with_retries(&raw, raw.incoming(envelope), shutdown)
                        .await
                }
                Err(reason) => self.applier.dead_letter(&raw, None, &reason, shutdown).await,
            }
        }
        .instrument(span)
        .await;
        crate::metrics::get()
            .consumer_duration
            .with_label_values(&[
                self.applier.name.as_str(),
                raw.topic.as_str(),
                &raw.partition.to_string(),
            ])
            .observe(started.elapsed().as_secs_f64());
        done
    }

    async fn apply_with_retries(&self, raw: &Raw, incoming: Incoming, shutdown: &CancellationToken) -> bool {
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

/// Decodes an envelope and checks what every handler relies on.
pub fn decode(bytes: &[u8]) -> Result<Envelope, String> {
    let env = Envelope::decode(bytes).map_err(|e| format!("undecodable envelope: {e}"))?;
    if env.payload.is_none() {
        return Err(format!("unknown event type {:?}", env.event_type));
    }
    if event_id(&env).is_none() {
        return Err(format!("event id {:?} is not a UUID", env.event_id));
    }
    if env.order_id.is_empty() {
        return Err("envelope has no order id".into());
    }
    Ok(env)
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
