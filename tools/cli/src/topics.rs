//! `omnisaga topics`: the topic catalog as the stack has it, with each
//! consumer group's lag (its committed offsets against the high watermarks).

use std::collections::{btree_map::Entry, BTreeMap};

use anyhow::{Context, Result};
use comfy_table::{ColumnConstraint, ContentArrangement, Table};
use omnisaga_catalog::{catalog, Topic};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    Offset, TopicPartitionList,
};
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
    let views = views(settings);
    spinner.finish_and_clear();
    let views = views?;
    if json {
        return output::print_json(&serde_json::json!({ "topics": views }));
    }
    let (topics, lags) = tables(&views);
    println!("{topics}\n{lags}");
    Ok(())
}

/// Every catalog topic with its lag, one Kafka client per consumer group.
fn views(settings: &Settings) -> Result<Vec<TopicView>> {
    let client = kafka::base_consumer(settings, "omnisaga-cli")?;
    let mut groups: BTreeMap<String, BaseConsumer> = BTreeMap::new();
    let mut views = Vec::new();
    for topic in catalog().topics() {
        let name = topic.name(&settings.topic_prefix);
        let marks: Vec<(i32, i64, i64)> = kafka::partitions(&client, &name)?
            .into_iter()
            .map(|p| kafka::watermarks(&client, &name, p).map(|(low, high)| (p, low, high)))
            .collect::<Result<_>>()?;
        let mut consumers = Vec::new();
        for service in &topic.consumers {
            let group = format!("{}{service}{}", settings.topic_prefix, settings.group_suffix);
            let group_client = match groups.entry(group.clone()) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(kafka::base_consumer(settings, &group)?),
            };
            consumers.push(lag(group_client, service, group, &name, &marks)?);
        }
        views.push(view(topic, settings, marks.len(), consumers));
    }
    Ok(views)
}

fn view(topic: &Topic, settings: &Settings, partitions: usize, consumers: Vec<ConsumerLag>) -> TopicView {
    TopicView {
        name: topic.name(&settings.topic_prefix),
        owner: topic.owner.clone(),
        purpose: topic.purpose.clone(),
        key: topic.key.clone(),
        message_types: topic.message_types.clone(),
        partitions: partitions as i32,
        retention: topic.retention.clone(),
        retention_ms: topic.retention_ms,
        dead_letter_topic: topic.dead_letter_name(&settings.topic_prefix),
        dead_letter_retention_ms: topic.dead_letter_retention_ms,
        consumers,
    }
}

/// The lag of `group` (`<prefix><service><suffix>`, as the runtime names
/// it) on `topic`, whose partitions have the watermarks `marks`.
fn lag(
    client: &BaseConsumer,
    service: &str,
    group: String,
    topic: &str,
    marks: &[(i32, i64, i64)],
) -> Result<ConsumerLag> {
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
            let lag = (high - committed.unwrap_or(low)).max(0);
            PartitionLag {
                partition,
                committed,
                high_watermark: high,
                lag,
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

/// The catalog table and the lag table.
fn tables(views: &[TopicView]) -> (Table, Table) {
    (catalog_table(views), lag_table(views))
}

fn catalog_table(views: &[TopicView]) -> Table {
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
    // The prose (purpose, retention) wraps rather than making the table
    // wider than a terminal; names and types keep their width.
    topics
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(160);
    for column in [0, 4, 7] {
        if let Some(c) = topics.column_mut(column) {
            c.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
    topics
}

fn lag_table(views: &[TopicView]) -> Table {
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
    lags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lagging(service: &str, lags: [i64; 3]) -> ConsumerLag {
        ConsumerLag {
            service: service.into(),
            group: format!("omnisaga.{service}"),
            lag: lags.iter().sum(),
            partitions: (0..3)
                .map(|p| PartitionLag {
                    partition: p,
                    committed: Some(10 - lags[p as usize]),
                    high_watermark: 10,
                    lag: lags[p as usize],
                })
                .collect(),
        }
    }

    #[test]
    fn the_tables_keep_names_whole_and_sum_the_lag() {
        let views: Vec<TopicView> = catalog()
            .topics()
            .iter()
            .map(|t| view(t, &Settings::for_tests(), 3, vec![lagging("payment", [0, 2, 5])]))
            .collect();
        let (topics, lags) = tables(&views);
        let (topics, lags) = (topics.to_string(), lags.to_string());
        for t in catalog().topics() {
            assert!(topics.contains(&t.name("omnisaga.")), "{topics}");
            assert!(topics.contains(&t.dead_letter_name("omnisaga.")), "{topics}");
        }
        assert!(topics.lines().all(|l| l.chars().count() <= 160), "{topics}");
        let row = lags.lines().find(|l| l.contains("omnisaga.orders.v1")).unwrap();
        assert!(row.contains(" 7 ") && row.contains("0:0 1:2 2:5"), "{row}");
    }
}
