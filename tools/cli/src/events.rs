//! `omnisaga events tail`: records of one or more topics, decoded to JSON
//! lines. Partitions are assigned directly from computed start offsets, so
//! no consumer group is joined and nothing is committed.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    error::KafkaError,
    message::{BorrowedMessage, Headers, Message},
    Offset, TopicPartitionList,
};
use serde_json::Value;

use crate::{
    cli::TailArgs,
    decode::{Decoder, Record},
    kafka, output,
    settings::Settings,
};

/// Where one partition is read from and, without `--follow`, up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: i64,
    /// The high watermark when the tail started.
    end: i64,
}

type Partitions = BTreeMap<(String, i32), Range>;

/// Runs `events tail`: prints every matching record as a JSON line.
pub async fn tail(args: &TailArgs, settings: &Settings, json: bool) -> Result<()> {
    let decoder = Decoder::load(args.schemas.as_deref())?;
    let topics: Vec<String> = args
        .topics
        .iter()
        .map(|t| kafka::resolve(t, &settings.topic_prefix))
        .collect();
    let consumer: StreamConsumer = kafka::config(settings, "omnisaga-cli")?
        .set("enable.partition.eof", "true")
        .create()
        .with_context(|| format!("Failed to create a Kafka consumer for {}", settings.brokers))?;
    let spinner = output::spinner("finding where to start", json);
    let ranges = start_offsets(&consumer, &topics, args);
    spinner.finish_and_clear();
    let remaining = to_read(ranges?, args.follow);
    if remaining.is_empty() {
        return Ok(());
    }
    assign(&consumer, &remaining)?;
    let total = remaining.values().map(|r| (r.end - r.start) as u64).sum();
    let mut reader = Reader {
        decoder,
        filter: Filter {
            order: args.order.as_deref(),
            event_type: args.event_type.as_deref(),
        },
        remaining,
        follow: args.follow,
        left: args.limit,
        progress: if args.follow {
            output::spinner("following", json)
        } else {
            output::bar(total, "reading", json)
        },
    };
    let result = tokio::select! {
        result = reader.run(&consumer) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    reader.progress.finish_and_clear();
    result
}

/// The partitions to read: with `--follow` all, else those with records
/// before the end they had at the start.
fn to_read(ranges: Partitions, follow: bool) -> Partitions {
    ranges
        .into_iter()
        .filter(|(_, r)| follow || r.start < r.end)
        .collect()
}

/// Reads the assigned partitions and prints what passes the filter.
struct Reader<'a> {
    decoder: Decoder,
    filter: Filter<'a>,
    /// Without `--follow`, the partitions not read to their end yet.
    remaining: Partitions,
    follow: bool,
    /// Records still to print under `--limit`.
    left: Option<u64>,
    progress: ProgressBar,
}

impl Reader<'_> {
    /// Reads until the ends (or forever with `--follow`) or the limit.
    async fn run(&mut self, consumer: &StreamConsumer) -> Result<()> {
        while self.left != Some(0) && (self.follow || !self.remaining.is_empty()) {
            match consumer.recv().await {
                Ok(message) => self.take(&message),
                // A partition ending in a transaction marker never shows its
                // last offset: its position says it was read.
                Err(KafkaError::PartitionEOF(_)) if !self.follow => {
                    positions_done(consumer, &mut self.remaining)?
                }
                Err(KafkaError::PartitionEOF(_)) => {}
                Err(e) => return Err(e).context("Failed to read from Kafka"),
            }
        }
        Ok(())
    }

    fn take(&mut self, message: &BorrowedMessage) {
        self.progress.inc(1);
        if !self.follow {
            let next = message.offset() + 1;
            done_at(&mut self.remaining, message.topic(), message.partition(), next);
        }
        let line = self.decoder.record(&record(message));
        if self.filter.passes(&line) {
            self.progress.suspend(|| println!("{line}"));
            self.left = self.left.map(|n| n - 1);
        }
    }
}

/// Every partition of `topics` with the offset to start at and the high
/// watermark now.
fn start_offsets(consumer: &StreamConsumer, topics: &[String], args: &TailArgs) -> Result<Partitions> {
    let mut ranges = Partitions::new();
    for topic in topics {
        for partition in kafka::partitions(consumer, topic)? {
            let (low, high) = kafka::watermarks(consumer, topic, partition)?;
            let start = if args.from_beginning { low } else { high };
            ranges.insert((topic.clone(), partition), Range { start, end: high });
        }
    }
    if let Some(since) = args.since {
        let mut query = TopicPartitionList::new();
        for (topic, partition) in ranges.keys() {
            query.add_partition_offset(topic, *partition, Offset::Offset(since.timestamp_millis()))?;
        }
        let found = consumer
            .offsets_for_times(query, kafka::TIMEOUT)
            .context("Failed to look up the offsets for --since")?;
        for element in found.elements() {
            if let (Some(range), Offset::Offset(offset)) = (
                ranges.get_mut(&(element.topic().to_owned(), element.partition())),
                element.offset(),
            ) {
                range.start = offset;
            }
        }
    }
    Ok(ranges)
}

fn assign(consumer: &StreamConsumer, partitions: &Partitions) -> Result<()> {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), range) in partitions {
        list.add_partition_offset(topic, *partition, Offset::Offset(range.start))?;
    }
    consumer.assign(&list).context("Failed to assign the partitions")
}

/// Drops a partition from `remaining` once `next` (the offset to read next) reached its end.
fn done_at(remaining: &mut Partitions, topic: &str, partition: i32, next: i64) {
    let key = (topic.to_owned(), partition);
    if remaining.get(&key).is_some_and(|r| next >= r.end) {
        remaining.remove(&key);
    }
}

/// Drops every partition whose position reached its end.
fn positions_done(consumer: &StreamConsumer, remaining: &mut Partitions) -> Result<()> {
    let positions = consumer.position().context("Failed to read the positions")?;
    for element in positions.elements() {
        if let Offset::Offset(next) = element.offset() {
            done_at(remaining, element.topic(), element.partition(), next);
        }
    }
    Ok(())
}

fn record<'a>(message: &'a BorrowedMessage<'a>) -> Record<'a> {
    Record {
        topic: message.topic(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis(),
        key: message.key(),
        headers: message
            .headers()
            .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
            .unwrap_or_default(),
        value: message.payload(),
    }
}

/// `--order` and `--type` over a decoded line.
struct Filter<'a> {
    order: Option<&'a str>,
    event_type: Option<&'a str>,
}

impl Filter<'_> {
    /// True when `line` is of the order and type asked for; a line that did
    /// not decode is matched on its key and has no type.
    fn passes(&self, line: &Value) -> bool {
        let envelope = line.get("envelope");
        let order = envelope.map_or(&line["key"], |e| &e["order_id"]);
        let event_type = envelope.map(|e| &e["event_type"]);
        self.order.is_none_or(|o| order.as_str() == Some(o))
            && self
                .event_type
                .is_none_or(|t| event_type.and_then(Value::as_str) == Some(t))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_filter_reads_the_envelope_or_else_the_key() {
        let decoded = json!({"key": "k", "envelope": {"order_id": "o-1", "event_type": "OrderPlaced"}});
        let garbage = json!({"key": "o-1", "error": "not an envelope"});
        let order = Filter {
            order: Some("o-1"),
            event_type: None,
        };
        assert!(order.passes(&decoded) && order.passes(&garbage));
        let placed = Filter {
            order: None,
            event_type: Some("OrderPlaced"),
        };
        assert!(placed.passes(&decoded) && !placed.passes(&garbage));
        let other = Filter {
            order: Some("o-2"),
            event_type: None,
        };
        assert!(!other.passes(&decoded));
    }

    #[test]
    fn a_partition_is_done_once_its_end_is_read() {
        let mut remaining = Partitions::from([(("t".to_owned(), 0), Range { start: 0, end: 3 })]);
        done_at(&mut remaining, "t", 0, 2);
        assert_eq!(remaining.len(), 1);
        done_at(&mut remaining, "t", 0, 3);
        assert!(remaining.is_empty());
    }
}
