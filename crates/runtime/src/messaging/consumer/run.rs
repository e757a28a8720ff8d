//! The poll and commit loop: fetch what is there, hand it on in order, and
//! store each offset only once its records are handled; at shutdown, commit
//! the stored offsets.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::Result;
use futures::FutureExt as _;
use rdkafka::{
    consumer::{CommitMode, Consumer as _},
    message::{BorrowedMessage, Headers, Message},
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    decode,
    observe::{count, ignored_spans},
    Consumer, Handler, Raw,
};
use crate::messaging::kafka;

impl<H: Handler> Consumer<H> {
    /// Consumes `topics` until `shutdown` is cancelled. What was fetched by
    /// then is still handled, unless a record waits to be retried: that stops
    /// it there, with the batch's offsets not stored, so the batch is
    /// redelivered. Then the stored offsets are committed. Fails only when the
    /// Kafka consumer cannot be created or subscribed.
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
            crate::base::failpoint::hit(crate::base::failpoint::CONSUMER_COMMITTED);
            for msg in &batch {
                // After a rebalance took the partition away the store fails;
                // its new owner redelivers the record and the inbox drops it.
                if let Err(e) = consumer.store_offset_from_message(msg) {
                    tracing::warn!(error = %e, partition = msg.partition(), "offset not stored");
                }
            }
        }
        self.slot.set(None);
        close(consumer, &self.group).await;
        Ok(())
    }

    /// Handles every record to the end, in order; false when stopped before that.
    async fn process_all(&self, raws: Vec<Raw>, shutdown: &CancellationToken) -> bool {
        // Records of a type the handler never acts on cost no transaction,
        // but still make their hop of the order's trace: a process span,
        // ended at once (none with `TRACE_IGNORED_RECORDS=off`). A record
        // without the header goes the whole way (and is dead-lettered if it
        // is not an event at all).
        let name = self.applier.name.as_str();
        let raws: Vec<Raw> = raws
            .into_iter()
            .filter(|raw| match raw.headers.get("event_type") {
                Some(t) if !self.applier.handler.wants(t) => {
                    if ignored_spans() {
                        drop(self.record_span(raw, decode(&raw.payload).ok().as_ref()));
                    }
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
        };
        let done = crate::base::db::counted(&span, done)
            .instrument(span.clone())
            .await;
        crate::base::metrics::get()
            .consumer_duration
            .with_label_values(&[
                self.applier.name.as_str(),
                raw.topic.as_str(),
                &raw.partition.to_string(),
            ])
            .observe(started.elapsed().as_secs_f64());
        done
    }
}

/// Longest a stopping consumer waits for its last commit and for leaving
/// its group. Both wait for the broker, on a thread of their own (they
/// block): with the broker gone they would wait for requests to time out,
/// long past the grace period.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// Commits the stored offsets and closes `consumer` (it leaves the group),
/// waiting [`CLOSE_WITHIN`] at most. What it could not commit is
/// redelivered to the partitions' next owner, whose inbox drops what was
/// applied.
async fn close(consumer: Arc<kafka::GroupConsumer>, group: &str) {
    let (closed, done) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("consumer-close".into())
        .spawn(move || {
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "no offsets committed at shutdown");
            }
            drop(consumer);
            let _ = closed.send(());
        });
    if spawned.is_err() {
        tracing::warn!(%group, "consumer stopped without its last commit: no thread to close it on");
        return;
    }
    match tokio::time::timeout(CLOSE_WITHIN, done).await {
        Ok(_) => tracing::info!(%group, "consumer stopped"),
        Err(_) => tracing::warn!(
            %group,
            "consumer stopped without its last commit: the broker did not answer within {CLOSE_WITHIN:?}; \
             what it applied since is redelivered and dropped by the inbox"
        ),
    }
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
}
