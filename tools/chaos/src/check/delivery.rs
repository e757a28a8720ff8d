//! The invariants of delivery (I5 to I8): messages, streams and the order
//! consumers applied records in, queues and inboxes, analytics. Pure
//! functions of what the databases hold and when commits were seen.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::LazyLock,
};

use omnisaga_runtime::{catalog::catalog, consumer::Wanted};

use super::Verdict;
use crate::observe::{Applied, Observations};

/// I5: one customer message per (order, template), queued and sent (a
/// dispatcher that sends a message twice records two `NotificationSent`);
/// a shipped order's customer was told it shipped; a cancelled order's
/// never was. At the channel, when the stack has one ([`channel_side`]):
/// every message recorded sent reached it, and each order's reached it in
/// the saga's order.
pub fn one_message(seen: &Observations) -> Verdict {
    let mut broken = Vec::new();
    let at_channel = channel_side(seen, &mut broken);
    let mut queued: BTreeMap<(&str, &str), (usize, bool)> = BTreeMap::new();
    for (order, template, sent) in &seen.messages {
        let entry = queued.entry((order, template)).or_default();
        entry.0 += 1;
        entry.1 |= *sent;
    }
    let mut sends: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (order, template) in &seen.sent {
        *sends.entry((order, template)).or_default() += 1;
    }
    for ((order, template), n) in &sends {
        if *n > 1 {
            broken.push(format!("{order}: '{template}' sent {n} times"));
        }
    }
    let status = |id: &str| seen.orders.get(id).map(|o| o.status.as_str());
    for ((order, template), (n, _)) in &queued {
        if *n > 1 {
            broken.push(format!("{order}: {n} '{template}' messages"));
        }
        if *template == "shipped" && status(order) == Some("CANCELLED") {
            broken.push(format!("{order}: cancelled, yet told it shipped"));
        }
    }
    for (id, order) in &seen.orders {
        let told = queued
            .get(&(id.as_str(), "shipped"))
            .is_some_and(|(_, sent)| *sent);
        if order.status == "SHIPPED" && !told {
            broken.push(format!("{id}: shipped, customer never told"));
        }
    }
    Verdict::new(
        "I5",
        "one message per (order, kind), queued and sent once; shipped orders' customers told, cancelled ones not told 'shipped'; \
         every message recorded sent at the channel, each order's in the saga's order",
        queued.len() + sends.len() + at_channel,
        broken,
    )
}

/// Where a customer message comes in the saga: the order is created, then
/// its payment fails, is delayed or is confirmed, then it is packed, then
/// shipped. A cancellation may follow any of them (`None`). A "payment
/// delayed" notice that a backlog brings after the payment is confirmed is
/// never sent (the notification service leaves it stale).
fn saga_rank(template: &str) -> Option<u8> {
    match template {
        "order_created" => Some(0),
        "payment_failed" | "payment_confirmed" | "payment_delayed" => Some(1),
        "ready_for_shipment" => Some(2),
        "shipped" => Some(3),
        _ => None,
    }
}

/// I5 at the channel: every message the notification service recorded
/// sent was received (by its `webhook-id`; a resend after a crash between
/// the send and its record is allowed: the receiver dedupes on the id),
/// and the first receipt of each of an order's kinds follows the saga's
/// order, 'order_created' first. Returns how many it checked.
fn channel_side(seen: &Observations, broken: &mut Vec<String>) -> usize {
    let Some(channel) = &seen.channel else {
        return 0;
    };
    for id in &seen.sent_ids {
        if !channel.per_message.contains_key(id) {
            broken.push(format!("message {id}: recorded sent, never reached the channel"));
        }
    }
    for (order, receipts) in &channel.per_order {
        let mut firsts: Vec<&str> = Vec::new();
        for (_, template) in receipts {
            if !firsts.contains(&template.as_str()) {
                firsts.push(template);
            }
        }
        if let Some(first) = firsts.first().filter(|t| **t != "order_created") {
            broken.push(format!(
                "{order}: '{first}' reached the channel before 'order_created'"
            ));
        }
        let mut latest: Option<(u8, &str)> = None;
        for template in firsts {
            let Some(rank) = saga_rank(template) else {
                continue;
            };
            match latest {
                Some((was, before)) if rank < was => {
                    broken.push(format!(
                        "{order}: '{template}' reached the channel after '{before}'"
                    ));
                }
                Some((was, _)) if rank == was => {}
                _ => latest = Some((rank, template)),
            }
        }
    }
    seen.sent_ids.len() + channel.per_order.len()
}

/// I6: every stream in every service is versions 1..n without gaps, and
/// each consumer's transactions committed each partition's records in
/// offset order: no offset's commit was seen before an earlier offset's
/// ([`crate::commits`]; commits seen by the same poll are not told apart).
/// A record the consumer dead-lettered (a copy of it is on the
/// dead-letter topic) is left out: an operator's replay, skip or redrive
/// commits it after later records of other keys, as it should.
pub fn streams_in_order(seen: &Observations) -> Verdict {
    let mut broken = Vec::new();
    for (service, stream, n, min, max) in &seen.streams {
        if *min != 1 || max != n {
            broken.push(format!(
                "{service} stream {stream}: {n} events, versions {min}..{max}"
            ));
        }
    }
    let dead_lettered: BTreeSet<(&str, &str, i32, i64)> = seen
        .records
        .iter()
        .filter_map(|r| r.dead_lettered.as_ref())
        .map(|(consumer, topic, partition, offset)| (consumer.as_str(), topic.as_str(), *partition, *offset))
        .collect();
    let applied: Vec<Applied> = seen
        .applied
        .iter()
        .filter(|a| !dead_lettered.contains(&(a.consumer.as_str(), a.topic.as_str(), a.partition, a.offset)))
        .cloned()
        .collect();
    broken.extend(commit_order(&applied));
    Verdict::new(
        "I6",
        "streams gapless (versions 1..n); each consumer committed each partition's records in offset order (but those it dead-lettered, applied when an operator resolved them)",
        seen.streams.len() + seen.applied.len(),
        broken,
    )
}

/// The records whose commit was seen before an earlier offset's of the
/// same consumer and partition.
fn commit_order(applied: &[Applied]) -> Vec<String> {
    // (service, consumer, topic, partition) -> (offset, poll that saw it).
    type Partition<'a> = (&'a str, &'a str, &'a str, i32);
    let mut by_partition: BTreeMap<Partition, Vec<(i64, u64)>> = BTreeMap::new();
    for a in applied {
        by_partition
            .entry((&a.service, &a.consumer, &a.topic, a.partition))
            .or_default()
            .push((a.offset, a.seen));
    }
    let mut broken = Vec::new();
    for ((service, consumer, topic, partition), mut rows) in by_partition {
        rows.sort_unstable();
        // The latest commit of any earlier offset, and that offset.
        let mut latest: Option<(u64, i64)> = None;
        for (offset, seen) in rows {
            if let Some((at, earlier)) = latest.filter(|(at, _)| *at > seen) {
                broken.push(format!(
                    "{service}: {consumer} committed {topic}[{partition}]@{offset} (poll {seen}) before @{earlier} (poll {at})"
                ));
            }
            if latest.is_none_or(|(at, _)| seen > at) {
                latest = Some((seen, offset));
            }
        }
    }
    broken
}

/// Whether consumer `service` subscribes to `event_type` on a topic it
/// consumes: order, payment, the warehouse and notification pass over the
/// types their handler's `reacts_to` does not take before any transaction
/// (so no inbox row); analytics records every type.
pub fn subscribes(service: &str, event_type: &str) -> bool {
    static WANTED: LazyLock<[(&str, Wanted); 4]> = LazyLock::new(|| {
        [
            ("order", Wanted::reacted_to(omnisaga_order::handlers::reacts_to)),
            (
                "payment",
                Wanted::reacted_to(omnisaga_payment::handlers::reacts_to),
            ),
            (
                "warehouse",
                Wanted::reacted_to(omnisaga_warehouse::handlers::reacts_to),
            ),
            (
                "notification",
                Wanted::reacted_to(omnisaga_notification::handlers::reacts_to),
            ),
        ]
    });
    WANTED
        .iter()
        .find(|(name, _)| *name == service)
        .is_none_or(|(_, wanted)| wanted.wants(event_type))
}

/// I7: nothing left to do: outboxes published, queues empty, every
/// consumer group caught up, and every published event of every type a
/// consumer subscribes to in that consumer's inbox (a consumer that
/// committed its offset before its transaction, and died between, misses
/// one), whether or not it ever handled an event of that type.
pub fn queues_empty(seen: &Observations) -> Verdict {
    let mut broken = seen.backlog.clone();
    broken.extend(
        seen.lag
            .iter()
            .filter(|(_, l)| *l > 0)
            .map(|(g, l)| format!("{g}: lag {l}")),
    );
    broken.extend(
        seen.undecodable
            .iter()
            .map(|(owner, topic)| format!("{owner}: an outbox row of {topic} that does not decode")),
    );
    for (service, key) in &seen.parked {
        if seen.orders.contains_key(key) {
            broken.push(format!("{key}: parked at {service} behind a dead letter"));
        }
    }
    let empty = BTreeSet::new();
    let mut checked = seen.lag.len() + seen.parked.len();
    for topic in catalog().topics() {
        for e in seen.published.iter().filter(|e| e.topic == topic.base_name()) {
            for consumer in topic.consumers.iter().filter(|c| subscribes(c, &e.event_type)) {
                checked += 1;
                if !seen.inboxes.get(consumer).unwrap_or(&empty).contains(&e.event_id) {
                    broken.push(format!(
                        "{} {} of {}: not in {consumer}'s inbox",
                        e.event_type, e.event_id, e.order_id
                    ));
                }
            }
        }
    }
    Verdict::new(
        "I7",
        "outboxes published, queues empty, consumer groups caught up, no order parked behind a dead letter, every event of every type a consumer subscribes to in its inbox",
        checked,
        broken,
    )
}

/// I8: analytics counts the orders the order service holds, shipped and
/// cancelled alike.
pub fn analytics_agrees(seen: &Observations) -> Verdict {
    let mut broken = Vec::new();
    for (id, order) in &seen.orders {
        let status = order.status.as_str();
        match seen.analytics.get(id) {
            None => broken.push(format!(
                "{id}: {status} at the order service, unknown to analytics"
            )),
            Some((placed, shipped, cancelled)) => {
                if !placed || (status == "SHIPPED") != *shipped || (status == "CANCELLED") != *cancelled {
                    broken.push(format!(
                        "{id}: {status} at the order service; analytics placed {placed}, shipped {shipped}, cancelled {cancelled}"
                    ));
                }
            }
        }
    }
    Verdict::new(
        "I8",
        "analytics holds every order with the order service's outcome",
        seen.orders.len(),
        broken,
    )
}
