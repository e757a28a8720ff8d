//! The Kafka consumer loop. For each record: decode the envelope, then in one
//! transaction record its event id in the inbox (a duplicate stops here) and
//! apply the handler; commit; only then store the offset. Records are handled
//! one at a time, so one order's events (one key, one partition) keep their
//! order. Transient failures are retried with backoff and jitter without
//! moving on; a record that cannot be decoded, or that the handler rejects
//! `max_attempts` times, goes to the topic's dead-letter topic (through the
//! outbox) with the error in its headers, and the loop goes on.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::Result;
use async_trait::async_trait;
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

use crate::{
    config::{KafkaConfig, Topics},
    event::{event_id, TraceContext},
    kafka,
    outbox::{self, OutboxWaker},
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
    fn from(e: sqlx::Error) -> Self {
        Self::Transient(e.into())
    }
}

impl From<StoreError> for HandlerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt(_) => Self::Rejected(e.into()),
            other => Self::Transient(other.into()),
        }
    }
}

/// Applies one event in the consumer's transaction.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Called at most once per event id and consumer (the inbox filters
    /// duplicates); everything it writes commits with the inbox record.
    async fn handle(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError>;
}

/// A consumer group member that feeds `topics` to `handler`.
pub struct Consumer<H> {
    /// Consumer group id and inbox name.
    pub group: String,
    pub topics: Vec<String>,
    pub kafka: KafkaConfig,
    pub pool: PgPool,
    pub handler: Arc<H>,
    pub waker: OutboxWaker,
    pub max_attempts: u32,
}

enum Outcome {
    Done,
    Stopped,
}

impl<H: Handler> Consumer<H> {
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let consumer = kafka::consumer(&self.kafka, &self.group)?;
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
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
            match self.process(&msg, &shutdown).await {
                Outcome::Done => consumer.store_offset_from_message(&msg)?,
                Outcome::Stopped => break,
            }
        }
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "no offsets to commit at shutdown");
        }
        tracing::info!(group = %self.group, "consumer stopped");
        Ok(())
    }

    async fn process(&self, msg: &BorrowedMessage<'_>, shutdown: &CancellationToken) -> Outcome {
        let trace = TraceContext {
            traceparent: header(msg, "traceparent"),
            tracestate: header(msg, "tracestate"),
        };
        let decoded = decode(msg.payload().unwrap_or_default());
        let span = tracing::info_span!(
            "consume",
            messaging.system = "kafka",
            messaging.destination.name = msg.topic(),
            messaging.kafka.partition = msg.partition(),
            messaging.kafka.offset = msg.offset(),
            messaging.consumer.group.name = %self.group,
            event.type = decoded.as_ref().map(|e| e.event_type.as_str()).unwrap_or("undecodable"),
            order.id = decoded.as_ref().map(|e| e.order_id.as_str()).unwrap_or(""),
            request.id = decoded.as_ref().map(|e| e.correlation_id.as_str()).unwrap_or(""),
            trace_id = trace.trace_id().unwrap_or(""),
        );
        async {
            let envelope = match decoded {
                Ok(env) => env,
                Err(reason) => return self.dead_letter(msg, None, &reason, shutdown).await,
            };
            let incoming = Incoming {
                envelope,
                topic: msg.topic().to_owned(),
                partition: msg.partition(),
                offset: msg.offset(),
                trace,
            };
            self.apply_with_retries(msg, &incoming, shutdown).await
        }
        .instrument(span)
        .await
    }

    async fn apply_with_retries(
        &self,
        msg: &BorrowedMessage<'_>,
        incoming: &Incoming,
        shutdown: &CancellationToken,
    ) -> Outcome {
        let mut rejections = 0;
        let mut attempt = 0u32;
        loop {
            let error = match self.apply(incoming).await {
                Ok(()) => return Outcome::Done,
                Err(HandlerError::Rejected(e)) => {
                    rejections += 1;
                    if rejections >= self.max_attempts {
                        let reason = format!("{e:#}");
                        return self
                            .dead_letter(msg, Some(&incoming.envelope), &reason, shutdown)
                            .await;
                    }
                    e
                }
                Err(HandlerError::Transient(e)) => e,
            };
            attempt += 1;
            tracing::warn!(error = %format!("{error:#}"), attempt, "handling failed, retrying");
            if !sleep_backoff(attempt, shutdown).await {
                return Outcome::Stopped;
            }
        }
    }

    async fn apply(&self, incoming: &Incoming) -> Result<(), HandlerError> {
        let id = event_id(&incoming.envelope)
            .ok_or_else(|| HandlerError::Rejected(anyhow::anyhow!("event id is not a UUID")))?;
        let mut tx = self.pool.begin().await?;
        let fresh = sqlx::query(
            "INSERT INTO inbox (consumer, event_id, topic, partition, \"offset\")
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&self.group)
        .bind(id)
        .bind(&incoming.topic)
        .bind(incoming.partition)
        .bind(incoming.offset)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            tracing::debug!("duplicate event skipped");
            return Ok(());
        }
        self.handler.handle(&mut tx, incoming).await?;
        tx.commit().await?;
        self.waker.wake();
        Ok(())
    }

    /// Parks the record on `<topic>.dlq`, retrying until the database takes it.
    async fn dead_letter(
        &self,
        msg: &BorrowedMessage<'_>,
        envelope: Option<&Envelope>,
        reason: &str,
        shutdown: &CancellationToken,
    ) -> Outcome {
        tracing::error!(error = reason, "dead-lettering record");
        let mut headers = BTreeMap::new();
        if let Some(h) = msg.headers() {
            for header in h.iter() {
                if let Some(v) = header.value.and_then(|v| std::str::from_utf8(v).ok()) {
                    headers.insert(header.key.to_owned(), v.to_owned());
                }
            }
        }
        headers.insert("dlq.error".into(), reason.to_owned());
        headers.insert("dlq.source.topic".into(), msg.topic().to_owned());
        headers.insert("dlq.source.partition".into(), msg.partition().to_string());
        headers.insert("dlq.source.offset".into(), msg.offset().to_string());
        headers.insert("dlq.consumer.group".into(), self.group.clone());
        let key = msg
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        let topic = Topics::dead_letter(msg.topic());
        let payload = msg.payload().unwrap_or_default();
        let mut attempt = 0;
        loop {
            let result: Result<(), sqlx::Error> = async {
                let mut tx = self.pool.begin().await?;
                outbox::enqueue_raw(&mut tx, &topic, &key, payload, &headers).await?;
                if let Some(id) = envelope.and_then(event_id) {
                    sqlx::query(
                        "INSERT INTO inbox (consumer, event_id, topic, partition, \"offset\")
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    )
                    .bind(&self.group)
                    .bind(id)
                    .bind(msg.topic())
                    .bind(msg.partition())
                    .bind(msg.offset())
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await
            }
            .await;
            match result {
                Ok(()) => {
                    self.waker.wake();
                    return Outcome::Done;
                }
                Err(e) => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "dead-lettering failed, retrying");
                    if !sleep_backoff(attempt, shutdown).await {
                        return Outcome::Stopped;
                    }
                }
            }
        }
    }
}

fn header(msg: &BorrowedMessage<'_>, key: &str) -> Option<String> {
    let headers = msg.headers()?;
    headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_owned)
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
