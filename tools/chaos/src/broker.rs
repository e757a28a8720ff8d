//! The broker as the checker reads it, Jepsen style: every partition of
//! every topic of the catalog (and of its dead-letter topic) from offset 0
//! to the end it had when the read began, as the broker's admin, assigned
//! (no group joined, nothing committed); and each service's consumer
//! group's lag.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use omnisaga_proto::v1::Envelope;
use omnisaga_runtime::catalog::catalog;
use prost::Message as _;
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    Message as _, Offset, TopicPartitionList,
};

use super::{dead_letters::is_own, observe::Record};
use omnisaga_stack::{KafkaAccess, Stack, SERVICES};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Longest the whole read may take.
const READ_FOR: Duration = Duration::from_secs(180);

/// Every record of every topic of `stack`, dead-letter topics included.
pub async fn records(stack: &Stack) -> Result<Vec<Record>> {
    let kafka = stack.kafka.clone();
    let prefix = stack.topic_prefix().to_owned();
    tokio::task::spawn_blocking(move || read_all(&kafka, &prefix)).await?
}

fn read_all(kafka: &KafkaAccess, prefix: &str) -> Result<Vec<Record>> {
    let consumer: BaseConsumer = kafka
        .admin_client()
        .set("group.id", format!("{prefix}chaos-checker"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("log_level", "3")
        .create()
        .context("Failed to create the checker's Kafka consumer")?;
    let mut names = Vec::new();
    for topic in catalog().topics() {
        names.push((topic.name(prefix), topic.base_name().to_owned()));
        names.push((
            topic.dead_letter_name(prefix),
            format!("{}.dlq", topic.base_name()),
        ));
    }
    let mut tpl = TopicPartitionList::new();
    // Where each partition ends: the high watermark when the read began.
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    let mut base: HashMap<String, String> = HashMap::new();
    for (name, short) in &names {
        let metadata = consumer.fetch_metadata(Some(name), TIMEOUT)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                let (low, high) = consumer.fetch_watermarks(name, p.id(), TIMEOUT)?;
                anyhow::ensure!(
                    low == 0,
                    "{name}[{}] starts at offset {low}: records were deleted",
                    p.id()
                );
                if high > 0 {
                    tpl.add_partition_offset(name, p.id(), Offset::Beginning)?;
                    ends.insert((name.clone(), p.id()), high);
                }
            }
        }
        base.insert(name.clone(), short.clone());
    }
    consumer.assign(&tpl)?;
    let mut records = Vec::new();
    let started = Instant::now();
    while !ends.is_empty() {
        if started.elapsed() > READ_FOR {
            bail!(
                "reading the topics took over {} s; not at the end yet: {:?}",
                READ_FOR.as_secs(),
                ends.keys().collect::<Vec<_>>()
            );
        }
        let Some(message) = consumer.poll(Duration::from_secs(1)) else {
            continue;
        };
        let m = message.context("Failed to read a record")?;
        let payload = m.payload().unwrap_or_default();
        records.push(Record {
            topic: base
                .get(m.topic())
                .cloned()
                .unwrap_or_else(|| m.topic().to_owned()),
            partition: m.partition(),
            offset: m.offset(),
            key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            event_id: Envelope::decode(payload).ok().map(|e| e.event_id),
            poison: is_own(payload),
            dead_lettered: dead_letter_source(&m),
        });
        let at = (m.topic().to_owned(), m.partition());
        if ends.get(&at).is_some_and(|end| m.offset() + 1 >= *end) {
            ends.remove(&at);
        }
    }
    Ok(records)
}

/// Each service's consumer group's lag over the topics it consumes.
pub async fn lag(stack: &Stack) -> Result<Vec<(String, i64)>> {
    let kafka = stack.kafka.clone();
    let prefix = stack.topic_prefix().to_owned();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for (service, _) in SERVICES {
            let group = format!("{prefix}{service}");
            let consumer: BaseConsumer = kafka.admin_client().set("group.id", &group).create()?;
            let mut tpl = TopicPartitionList::new();
            for topic in catalog().consumed_by(service) {
                let name = topic.name(&prefix);
                let metadata = consumer.fetch_metadata(Some(&name), TIMEOUT)?;
                for t in metadata.topics() {
                    for p in t.partitions() {
                        tpl.add_partition(&name, p.id());
                    }
                }
            }
            let committed = consumer.committed_offsets(tpl, TIMEOUT)?;
            let mut lag = 0;
            for e in committed.elements() {
                let (_, high) = consumer.fetch_watermarks(e.topic(), e.partition(), TIMEOUT)?;
                let at = e.offset().to_raw().filter(|o| *o >= 0).unwrap_or(0);
                lag += (high - at).max(0);
            }
            out.push((group, lag));
        }
        anyhow::Ok(out)
    })
    .await?
}

/// Where a record on a dead-letter topic came from, as its headers say:
/// `(consumer, source topic, partition, offset)`.
fn dead_letter_source(m: &rdkafka::message::BorrowedMessage<'_>) -> Option<(String, String, i32, i64)> {
    use rdkafka::message::{Headers as _, Message as _};
    let headers = m.headers()?;
    let get = |name: &str| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    Some((
        get("dlq.consumer")?,
        get("dlq.source.topic")?,
        get("dlq.source.partition")?.parse().ok()?,
        get("dlq.source.offset")?.parse().ok()?,
    ))
}
