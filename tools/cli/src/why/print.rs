//! `order why` as text: a few lines, the order's own first.

use serde_json::Value;

use super::{Letter, Why};
use crate::output::text;

pub(super) fn print(w: &Why) {
    let o = &w.order;
    println!(
        "order {} ({})  {} since {}{}",
        text(&o["order_number"]),
        w.order_id,
        text(&o["status"]),
        text(&o["updated_at"]),
        if o["stuck"] == true {
            "  STUCK (past its stage's limit)"
        } else {
            ""
        }
    );
    if o["escalated"] == true {
        println!(
            "escalated: its stage's deadline passed in {}; the customer was told it is delayed, it goes on when the news comes",
            text(&o["status"])
        );
    }
    match &w.waiting {
        None => println!("waits for: nothing, the order is finished"),
        Some(wait) => {
            if let Some(first) = &wait.first {
                println!("waits for: {first}");
            }
            println!(
                "{}: {} from {}",
                if wait.first.is_some() { "then" } else { "waits for" },
                wait.events.join(" or "),
                wait.owed_by
            );
        }
    }
    print_dead_letters(w);
    for u in &w.unknown {
        println!("dead letters unknown: {u}");
    }
    for h in &w.lag {
        match (&h.progress, h.partition) {
            (Some(p), Some(partition)) => println!(
                "lag: {} reads {}[{}]: {} behind (at {} of {}, consumer {})",
                h.service,
                h.topic,
                partition,
                text(&p["lag"]),
                text(&p["position"]),
                text(&p["high_watermark"]),
                text(&p["consumer"])
            ),
            (_, partition) => println!(
                "lag: {} reads {}{}: unknown ({})",
                h.service,
                h.topic,
                partition.map_or(String::new(), |p| format!("[{p}]")),
                h.note.as_deref().unwrap_or("-")
            ),
        }
    }
    // Earliest first: those passed, then the next one.
    let now = chrono::Utc::now();
    let deadlines: Vec<&Value> = o["deadlines"].as_array().into_iter().flatten().collect();
    if deadlines.is_empty() {
        println!("next deadline: none");
    }
    for d in deadlines {
        let passed = d["at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t <= now);
        let what = if passed {
            "passed deadline"
        } else {
            "next deadline"
        };
        println!(
            "{what}: {} {}: {}",
            text(&d["at"]),
            text(&d["kind"]),
            text(&d["then"])
        );
        if !passed {
            break;
        }
    }
    match &w.trace_url {
        Some(url) => println!("trace: {url}"),
        None => println!("trace: none (the order was placed without a trace)"),
    }
}

/// Each consumer's dead letters of the order, those on the order's way
/// (the services [`Why::lag`] follows) first: the oldest is what parks
/// the consumer, the later ones wait behind it.
fn print_dead_letters(w: &Why) {
    if w.dead_letters.is_empty() {
        println!("dead letters: none of this order at any service");
        return;
    }
    let on_way = |service: &str| w.lag.iter().any(|h| h.service == service);
    let mut consumers: Vec<(&str, &str)> = Vec::new();
    for d in &w.dead_letters {
        let key = (d.service.as_str(), d.letter["consumer"].as_str().unwrap_or("?"));
        if !consumers.contains(&key) {
            consumers.push(key);
        }
    }
    consumers.sort_by_key(|(service, _)| !on_way(service));
    for (service, consumer) in consumers {
        let letters: Vec<&Letter> = w
            .dead_letters
            .iter()
            .filter(|d| d.service == service && d.letter["consumer"] == consumer)
            .collect();
        let (first, behind) = (&letters[0].letter, &letters[1..]);
        let head = if letters[0].parked {
            format!("PARKED at {service} (consumer {consumer}) behind dead letter")
        } else {
            format!("dead letter at {service} (consumer {consumer}), not parking it:")
        };
        println!(
            "{}{head} #{} ({}[{}]@{}, {}): {}",
            if on_way(service) { "" } else { "also " },
            text(&first["id"]),
            text(&first["topic"]),
            text(&first["partition"]),
            text(&first["offset"]),
            text(&first["event_type"]),
            text(&first["error"]),
        );
        if !behind.is_empty() {
            let types: Vec<String> = behind.iter().map(|d| text(&d.letter["event_type"])).collect();
            println!(
                "  {} later record(s) of the order wait behind it: {}",
                behind.len(),
                types.join(", ")
            );
        }
        if on_way(service) {
            println!(
                "  see: omnisaga dlq show {service} {}; once its cause is fixed: omnisaga dlq replay {service} {}",
                text(&first["id"]),
                w.order_id
            );
        }
    }
}
