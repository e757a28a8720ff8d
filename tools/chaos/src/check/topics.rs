//! I10, the broker read back Jepsen style: every record of every topic
//! from offset 0, each event id mapped to its outbox row and to its stream
//! and version in the owner's event store.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;

use super::Verdict;
use crate::observe::Observations;

/// What reading the topics found.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TopicRead {
    /// Records read, dead-letter topics included.
    pub records: usize,
    /// Distinct events on the saga topics.
    pub events: usize,
    /// Outbox events never on their topic.
    pub lost: usize,
    /// Records of no outbox (besides the fault suite's own poison).
    pub phantom: usize,
    /// Records repeating an event already on the topic (allowed: the
    /// relay publishes at least once; consumers deduplicate).
    pub duplicates: usize,
    /// `duplicates / records` of the saga topics.
    pub duplicate_rate: f64,
    /// The fault suite's poison records, on a topic or parked.
    pub poison: usize,
    /// Records on the dead-letter topics.
    pub dead_letters: usize,
    /// Keys whose events' versions were not increasing in offset order.
    pub reordered_keys: usize,
}

/// Reads back `seen.records` against the outboxes and event stores.
pub fn topics_read(seen: &Observations) -> (Verdict, TopicRead) {
    let mut read = TopicRead {
        records: seen.records.len(),
        ..TopicRead::default()
    };
    let mut broken = Vec::new();
    // (topic, event id) -> its owner.
    let outbox: HashMap<(&str, &str), &str> = seen
        .published
        .iter()
        .map(|p| ((p.topic.as_str(), p.event_id.as_str()), p.owner.as_str()))
        .collect();
    let mut records: Vec<_> = seen.records.iter().collect();
    records.sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
    // Events on each saga topic, and on its dead-letter topic.
    let mut on_topic: HashSet<(&str, &str)> = HashSet::new();
    let mut parked = Vec::new();
    // Per (topic, key, stream): the highest version first seen so far.
    let mut versions: HashMap<(&str, &str, &str), i64> = HashMap::new();
    let mut reordered: BTreeSet<(&str, &str)> = BTreeSet::new();
    for r in records {
        if r.poison {
            read.poison += 1;
            continue;
        }
        if r.topic.ends_with(".dlq") {
            read.dead_letters += 1;
            parked.push(r);
            continue;
        }
        let Some(event) = r.event_id.as_deref() else {
            read.phantom += 1;
            broken.push(format!(
                "{}[{}]@{}: a record that is no envelope (phantom)",
                r.topic, r.partition, r.offset
            ));
            continue;
        };
        if !on_topic.insert((&r.topic, event)) {
            read.duplicates += 1;
            continue;
        }
        let Some(owner) = outbox.get(&(r.topic.as_str(), event)) else {
            read.phantom += 1;
            broken.push(format!(
                "{}[{}]@{}: event {event} of key {} in no outbox (phantom)",
                r.topic, r.partition, r.offset, r.key
            ));
            continue;
        };
        let Some((stream, version)) = seen.stored.get(&((*owner).to_owned(), event.to_owned())) else {
            broken.push(format!(
                "{}[{}]@{}: event {event} not in {owner}'s event store",
                r.topic, r.partition, r.offset
            ));
            continue;
        };
        let highest = versions.entry((&r.topic, &r.key, stream)).or_insert(0);
        if *version < *highest {
            if reordered.insert((&r.topic, &r.key)) {
                broken.push(format!(
                    "{}[{}]@{}: key {} has {stream} version {version} after version {highest}",
                    r.topic, r.partition, r.offset, r.key
                ));
            }
        } else {
            *highest = *version;
        }
    }
    read.events = on_topic.len();
    read.reordered_keys = reordered.len();
    for p in &seen.published {
        if !on_topic.contains(&(p.topic.as_str(), p.event_id.as_str())) {
            read.lost += 1;
            broken.push(format!(
                "{} {} of {}: in {}'s outbox, never on {} (lost)",
                p.event_type, p.event_id, p.order_id, p.owner, p.topic
            ));
        }
    }
    // A parked record is a copy of one on its source topic.
    for r in parked {
        let source = r.topic.trim_end_matches(".dlq");
        if !r
            .event_id
            .as_deref()
            .is_some_and(|e| on_topic.contains(&(source, e)))
        {
            read.phantom += 1;
            broken.push(format!(
                "{}[{}]@{}: a dead letter of no record on {source} (phantom)",
                r.topic, r.partition, r.offset
            ));
        }
    }
    let saga = read.records - read.dead_letters - read.poison;
    read.duplicate_rate = if saga == 0 {
        0.0
    } else {
        read.duplicates as f64 / saga as f64
    };
    if read.records == 0 {
        broken.push("no record on any topic".into());
    }
    let verdict = Verdict::new(
        "I10",
        "every topic read from offset 0: every outbox event on its topic (none lost), every record from an outbox (no phantom), each key's versions increasing in offset order; duplicates allowed and counted",
        read.records + seen.published.len(),
        broken,
    );
    (verdict, read)
}
