//! Consumer progress: per assigned partition, the position reached, the
//! partition's end and the lag between them (`GET /v1/admin/consumers`,
//! `crate::edge::consumers`).
//! Operators read it to see a backlog; tests wait on it for "caught up".

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use rdkafka::{consumer::Consumer, Offset};

use crate::messaging::kafka::GroupConsumer;
use serde::Serialize;

/// Where a running consumer publishes itself for the progress endpoint.
#[derive(Clone, Default)]
pub struct Slot(Arc<Mutex<Option<Arc<GroupConsumer>>>>);

impl Slot {
    pub fn set(&self, consumer: Option<Arc<GroupConsumer>>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = consumer;
    }
    pub fn get(&self) -> Option<Arc<GroupConsumer>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One assigned partition: where the consumer is and how far behind.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PartitionProgress {
    pub topic: String,
    pub partition: i32,
    /// Next offset this consumer will read (its committed offset before it read any).
    pub position: Option<i64>,
    pub high_watermark: i64,
    pub lag: i64,
}

/// Blocking: asks the broker for each assigned partition's end.
///
/// The questions go out together: the broker answers the requests of one
/// connection in order, so each waits behind the consumer's own fetch (up to
/// its fetch wait, `KAFKA_FETCH_WAIT_MAX_MS`); asked one after the other, a
/// consumer of nine partitions took seconds.
pub fn progress(consumer: &GroupConsumer) -> Result<Vec<PartitionProgress>, rdkafka::error::KafkaError> {
    let timeout = Duration::from_secs(2);
    let positions = consumer.position()?;
    let committed = consumer.committed(timeout)?;
    let elements = positions.elements();
    let partitions: Vec<(String, i32)> = elements
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect();
    let watermarks: Vec<_> = std::thread::scope(|scope| {
        let asks: Vec<_> = partitions
            .iter()
            .map(|(topic, partition)| {
                scope.spawn(move || consumer.fetch_watermarks(topic, *partition, timeout))
            })
            .collect();
        asks.into_iter()
            .map(|ask| ask.join().unwrap_or(Err(rdkafka::error::KafkaError::Canceled)))
            .collect()
    });
    let mut out = Vec::new();
    for (e, watermarks) in elements.iter().zip(watermarks) {
        let (low, high) = watermarks?;
        let position = match e.offset() {
            Offset::Offset(n) => Some(n),
            _ => committed.find_partition(e.topic(), e.partition()).and_then(|c| {
                if let Offset::Offset(n) = c.offset() {
                    Some(n)
                } else {
                    None
                }
            }),
        };
        let lag = high - position.unwrap_or(low);
        out.push(PartitionProgress {
            topic: e.topic().to_owned(),
            partition: e.partition(),
            position,
            high_watermark: high,
            lag,
        });
    }
    Ok(out)
}

#[derive(Clone)]
pub struct Registered {
    pub name: String,
    pub group: String,
    pub slot: Slot,
}

/// Scrape-time refresh of `omnisaga_consumer_lag` for `consumers`. The
/// broker calls block (up to 2 s each) when the broker is down, so they run
/// in their own task, one at a time, and a scrape waits for them at most a
/// second: it then reports the last values rather than timing out.
///
/// An instance reports only the partitions assigned to it now: a partition
/// that moved to another instance loses its series here, so the group's
/// lag summed over instances counts each partition once.
pub fn lag_refresh(consumers: Vec<Registered>) -> crate::base::metrics::Refresh {
    let consumers = Arc::new(consumers);
    let running = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reported: Arc<Mutex<Vec<[String; 3]>>> = Arc::default();
    Arc::new(move |_pool| {
        let (consumers, running, reported) = (consumers.clone(), running.clone(), reported.clone());
        Box::pin(async move {
            if running.swap(true, std::sync::atomic::Ordering::AcqRel) {
                return;
            }
            let task = tokio::spawn(async move {
                let _done = ClearOnDrop(running);
                let lag = &crate::base::metrics::get().consumer_lag;
                let mut now = Vec::new();
                for c in consumers.iter() {
                    let consumer = c.slot.get();
                    let parts = match consumer {
                        Some(consumer) => {
                            match tokio::task::spawn_blocking(move || progress(&consumer)).await {
                                Ok(Ok(parts)) => parts,
                                // Unknown for now: keep what was reported.
                                _ => {
                                    let kept = reported.lock().unwrap_or_else(|e| e.into_inner());
                                    now.extend(kept.iter().filter(|l| l[0] == c.name).cloned());
                                    continue;
                                }
                            }
                        }
                        None => Vec::new(),
                    };
                    for p in parts {
                        let labels = [c.name.clone(), p.topic, p.partition.to_string()];
                        lag.with_label_values(&labels).set(p.lag);
                        now.push(labels);
                    }
                }
                let mut reported = reported.lock().unwrap_or_else(|e| e.into_inner());
                for gone in reported.iter().filter(|l| !now.contains(l)) {
                    let _ = lag.remove_label_values(&[gone[0].as_str(), gone[1].as_str(), gone[2].as_str()]);
                }
                *reported = now;
            });
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        })
    })
}

/// Lowers the flag when the refresh ends, however it ends.
struct ClearOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}
