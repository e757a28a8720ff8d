//! `omnisaga topics`: the topic catalog as the stack has it, with each
//! consumer group's lag (its committed offsets against the high watermarks).

use anyhow::{Context, Result};
use omnisaga_catalog::{catalog, Topic};
use rdkafka::{consumer::Consumer, Offset, TopicPartitionList};
use serde::Serialize;

use crate::{kafka, output, settings::Settings};

/// One topic of the catalog and how far its consumers are behind.
#[derive(Debug, Serialize)]
struct TopicView {
    name: String,
    owner: String,
    purpose: String,
    key: String,
    message_types: Vec<String>,
    partitions: i32,
    retention: String,
    retention_ms: u64,
    dead_letter_topic: String,
    dead_letter_retention_ms: u64,
    consumers: Vec<ConsumerLag>,
}

/// A consumer group's lag on one topic.
#[derive(Debug, Serialize)]
struct ConsumerLag {
    service: String,
    group: String,
    /// Records not yet committed, over every partition.
    lag: i64,
    partitions: Vec<PartitionLag>,
}

#[derive(Debug, Serialize)]
struct PartitionLag {
    partition: i32,
    /// The group's committed offset, `None` when it committed none.
    committed: Option<i64>,
    high_watermark: i64,
    /// From the committed offset, or from the low watermark when none is.
    lag: i64,
}

/// Runs `topics`: a table, or `{"topics": [...]}` with `--json`.
pub async fn run(settings: &Settings, json: bool) -> Result<()> {
    let spinner = output::spinner("reading offsets and consumer groups", json);
    let views: Result<Vec<TopicView>> = catalog().topics().iter().map(|t| view(t, settings)).collect();
    spinner.finish_and_clear();
    let views = views?;
    if json {
        return output::print_json(&serde_json::json!({ "topics": views }));
    }
    print_tables(&views);
    Ok(())
}

fn view(topic: &Topic, settings: &Settings) -> Result<TopicView> {
    let name = topic.name(&settings.topic_prefix);
    let client = kafka::base_consumer(&settings.brokers, "omnisaga-cli")?;
    let partitions = kafka::partitions(&client, &name)?;
    let marks: Vec<(i32, i64, i64)> = partitions
        .iter()
        .map(|&p| kafka::watermarks(&client, &name, p).map(|(low, high)| (p, low, high)))
        .collect::<Result<_>>()?;
    let consumers = topic
        .consumers
        .iter()
        .map(|service| lag(settings, service, &name, &marks))
        .collect::<Result<_>>()?;
    Ok(TopicView {
        dead_letter_topic: topic.dead_letter_name(&settings.topic_prefix),
        name,
        owner: topic.owner.clone(),
        purpose: topic.purpose.clone(),
        key: topic.key.clone(),
        message_types: topic.message_types.clone(),
        partitions: partitions.len() as i32,
        retention: topic.retention.clone(),
        retention_ms: topic.retention_ms,
        dead_letter_retention_ms: topic.dead_letter_retention_ms,
        consumers,
    })
}

/// `service`'s group (`<prefix><service><suffix>`, as the runtime names it) on `topic`.
fn lag(settings: &Settings, service: &str, topic: &str, marks: &[(i32, i64, i64)]) -> Result<ConsumerLag> {
    let group = format!("{}{service}{}", settings.topic_prefix, settings.group_suffix);
    let client = kafka::base_consumer(&settings.brokers, &group)?;
    let mut list = TopicPartitionList::new();
    for (p, _, _) in marks {
        list.add_partition(topic, *p);
    }
    let committed = client
        .committed_offsets(list, kafka::TIMEOUT)
        .with_context(|| format!("Failed to read group {group}'s offsets of {topic}"))?;
    let partitions: Vec<PartitionLag> = marks
        .iter()
        .map(|&(partition, low, high)| {
            let committed = match committed.find_partition(topic, partition).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            };
            PartitionLag {
                partition,
                committed,
                high_watermark: high,
                lag: (high - committed.unwrap_or(low)).max(0),
            }
        })
        .collect();
    Ok(ConsumerLag {
        service: service.to_owned(),
        lag: partitions.iter().map(|p| p.lag).sum(),
        group,
        partitions,
    })
}

fn print_tables(views: &[TopicView]) {
    let mut topics = output::table([
        "TOPIC",
        "OWNER",
        "PURPOSE",
        "KEY",
        "EVENT TYPES",
        "PARTITIONS",
        "RETENTION",
        "DEAD LETTERS",
    ]);
    // The prose wraps rather than making the table wider than a terminal.
    topics
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_width(160);
    for v in views {
        topics.add_row([
            v.name.clone(),
            v.owner.clone(),
            v.purpose.clone(),
            v.key.clone(),
            v.message_types.join("\n"),
            v.partitions.to_string(),
            v.retention.clone(),
            v.dead_letter_topic.clone(),
        ]);
    }
    println!("{topics}");
    let mut lags = output::table(["TOPIC", "CONSUMER", "GROUP", "LAG", "BY PARTITION"]);
    for v in views {
        for c in &v.consumers {
            let by_partition: Vec<String> = c
                .partitions
                .iter()
                .map(|p| format!("{}:{}", p.partition, p.lag))
                .collect();
            lags.add_row([
                v.name.clone(),
                c.service.clone(),
                c.group.clone(),
                c.lag.to_string(),
                by_partition.join(" "),
            ]);
        }
    }
    println!("{lags}");
}
