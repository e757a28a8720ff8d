//! The collector of saga ends: a Kafka consumer on the order and warehouse
//! topics that finishes each saga the sender saw accepted, at the time the
//! record that ended it was produced.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use anyhow::Result;
use futures::StreamExt;
use hdrhistogram::Histogram;
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    message::Headers,
    Message, Offset, TopicPartitionList,
};
use tokio::time::Instant;

use omnisaga_stack::KafkaAccess;

use crate::{histogram, record};

const ORDERS_TOPIC: &str = "omnisaga.orders.v1";
const WAREHOUSE_TOPIC: &str = "omnisaga.warehouse.v1";

/// How long the follower's fetches wait at the broker (it reads record
/// timestamps, so this bounds only how soon a run sees its last saga end).
const FOLLOWER_FETCH_WAIT_MS: &str = "250";

/// Follows the order and warehouse topics from their end: every saga that
/// ends (ready for shipment, or cancelled) is reported to the current run.
///
/// A saga ends when the record that ends it was produced: its Kafka
/// timestamp (set when the service's relay hands it to the producer, before
/// the broker acknowledges it), not
/// when the follower happens to fetch it. So the follower can fetch lazily
/// (a long fetch wait, records gathered at the broker) and add next to no
/// load to the broker it measures.
pub struct Follower {
    pub(super) sagas: Sagas,
    _task: tokio::task::JoinHandle<()>,
}

impl Follower {
    /// Assigns every partition of the order and warehouse topics from their
    /// end and follows them in a task of its own until dropped.
    pub async fn start(kafka: &KafkaAccess) -> Result<Self> {
        let consumer: StreamConsumer = kafka
            .admin_client()
            .set(
                "group.id",
                format!("bench-follower-{}", uuid::Uuid::new_v4().simple()),
            )
            .set("group.protocol", "classic")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", FOLLOWER_FETCH_WAIT_MS)
            .set("fetch.min.bytes", "65536")
            .create()?;
        // Every partition the topics have (the services create them with
        // `KAFKA_TOPIC_PARTITIONS`), from the end.
        let mut tpl = TopicPartitionList::new();
        for topic in [ORDERS_TOPIC, WAREHOUSE_TOPIC] {
            let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
            let partitions = metadata
                .topics()
                .first()
                .map(|t| t.partitions().len())
                .unwrap_or(0);
            anyhow::ensure!(partitions > 0, "topic {topic} has no partitions yet");
            for p in 0..partitions as i32 {
                tpl.add_partition_offset(topic, p, Offset::End)?;
            }
        }
        consumer.assign(&tpl)?;
        let sagas = Sagas::default();
        let shared = sagas.clone();
        let clock = Clock::now();
        let task = tokio::spawn(async move {
            let mut stream = consumer.stream();
            while let Some(m) = stream.next().await {
                let Ok(m) = m else { continue };
                let at = m
                    .timestamp()
                    .to_millis()
                    .map_or_else(Instant::now, |ms| clock.instant(ms));
                let event_type = m
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == "event_type"))
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                let ready = match event_type.as_deref() {
                    Some("OrderReadyForShipment") => true,
                    Some("OrderCancelled") => false,
                    _ => continue,
                };
                let Some(key) = m.key().map(|k| String::from_utf8_lossy(k).into_owned()) else {
                    continue;
                };
                shared.ended(key, at, ready);
            }
        });
        Ok(Self { sagas, _task: task })
    }
}

/// The sagas of the current run, shared by the follower, which sees them
/// end, and the sender, which sees them accepted: whichever of the two comes
/// second finishes the saga.
#[derive(Clone, Default)]
pub(super) struct Sagas(Arc<Mutex<Tracker>>);

/// What one run learnt of its sagas so far.
#[derive(Default)]
pub(super) struct Tracker {
    /// Intended start of every order answered 201 and not yet finished.
    pub(super) pending: HashMap<String, Instant>,
    /// Sagas seen finishing before their 201 was read: (when, shipped or cancelled).
    early: HashMap<String, (Instant, bool)>,
    pub(super) saga: Option<Histogram<u64>>,
    pub(super) completions: Vec<Instant>,
    pub(super) cancelled: u64,
}

impl Tracker {
    fn finish(&mut self, intended: Instant, at: Instant, ready: bool) {
        if ready {
            if let Some(h) = self.saga.as_mut() {
                record(h, at.saturating_duration_since(intended));
            }
            self.completions.push(at);
        } else {
            self.cancelled += 1;
        }
    }
}

impl Sagas {
    /// The tracker, also after a task panicked holding it.
    pub(super) fn lock(&self) -> MutexGuard<'_, Tracker> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a run: nothing pending, nothing finished, an empty saga histogram.
    pub(super) fn begin_run(&self) {
        let mut t = self.lock();
        *t = Tracker {
            saga: Some(histogram()),
            ..Tracker::default()
        };
    }

    /// Order `id`, due at `intended`, was answered 201: its saga finishes now
    /// if the follower saw it end already, else when it does.
    pub(super) fn accepted(&self, id: String, intended: Instant) {
        let mut t = self.lock();
        match t.early.remove(&id) {
            Some((at, ready)) => t.finish(intended, at, ready),
            None => {
                t.pending.insert(id, intended);
            }
        }
    }

    /// The saga of order `key` ended at `at`, ready for shipment or cancelled.
    fn ended(&self, key: String, at: Instant, ready: bool) {
        let mut t = self.lock();
        match t.pending.remove(&key) {
            Some(intended) => t.finish(intended, at, ready),
            None => {
                t.early.insert(key, (at, ready));
            }
        }
    }

    /// Sagas ready for shipment and sagas cancelled so far.
    pub(super) fn progress(&self) -> (u64, u64) {
        let t = self.lock();
        (t.completions.len() as u64, t.cancelled)
    }

    /// Ends the run: what it learnt, leaving an empty tracker behind.
    pub(super) fn take(&self) -> Tracker {
        std::mem::take(&mut *self.lock())
    }
}

/// Maps wall-clock milliseconds (Kafka timestamps) onto the monotonic clock
/// the generator measures intended starts with.
#[derive(Clone, Copy)]
struct Clock {
    instant: Instant,
    unix_ms: i64,
}

impl Clock {
    fn now() -> Self {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Self {
            instant: Instant::now(),
            unix_ms,
        }
    }

    fn instant(&self, unix_ms: i64) -> Instant {
        let offset = unix_ms - self.unix_ms;
        let magnitude = Duration::from_millis(offset.unsigned_abs());
        if offset >= 0 {
            self.instant + magnitude
        } else {
            self.instant.checked_sub(magnitude).unwrap_or(self.instant)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_timestamps_map_onto_the_monotonic_clock() {
        let clock = Clock::now();
        assert_eq!(clock.instant(clock.unix_ms), clock.instant);
        assert_eq!(
            clock.instant(clock.unix_ms + 1_500) - clock.instant,
            Duration::from_millis(1_500)
        );
        assert_eq!(
            clock.instant - clock.instant(clock.unix_ms - 250),
            Duration::from_millis(250)
        );
    }
}
