//! I9: whole traces of the orders no fault touched, through the trace
//! viewer's query API (the one invariant that asks a running service).

use std::{collections::HashMap, time::SystemTime};

use anyhow::Result;
use sqlx::Row as _;

use super::Verdict;
use omnisaga_stack::{
    traces::{trace_problems, Catalog},
    Stack, SERVICES,
};

use crate::{
    faults::Injected,
    load::{Outcome, Placement},
    observe::{connect, Order},
};

/// How many fault-free shipped orders I9 looks at (the latest ones, whose
/// traces the viewer still holds: it keeps the last `TRACES_MAX`).
const TRACES_SAMPLED: usize = 100;

/// When each order's life in the stack ended, in seconds since `epoch`:
/// the last time any service recorded one of its events or processed one
/// from a topic.
async fn settled(stack: &Stack, epoch: SystemTime) -> Result<HashMap<String, f64>> {
    let epoch = epoch
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let mut order_of = HashMap::new();
    let mut last: HashMap<String, f64> = HashMap::new();
    let mut processed = Vec::new();
    for (service, _) in SERVICES {
        let mut db = connect(stack, service).await?;
        let recorded = sqlx::query(
            "SELECT event_id::text, order_id, extract(epoch FROM recorded_at)::float8 FROM events",
        )
        .fetch_all(&mut db)
        .await?;
        for row in recorded {
            let (event, order, at): (String, String, f64) = (row.get(0), row.get(1), row.get(2));
            let latest = last.entry(order.clone()).or_insert(f64::MIN);
            *latest = latest.max(at - epoch);
            order_of.insert(event, order);
        }
        let rows = sqlx::query("SELECT event_id::text, extract(epoch FROM processed_at)::float8 FROM inbox")
            .fetch_all(&mut db)
            .await?;
        processed.extend(rows.iter().map(|r| (r.get::<String, _>(0), r.get::<f64, _>(1))));
    }
    for (event, at) in processed {
        if let Some(order) = order_of.get(&event) {
            let latest = last.entry(order.clone()).or_insert(f64::MIN);
            *latest = latest.max(at - epoch);
        }
    }
    Ok(last)
}

/// How long after a service's last step for an order I9 still counts a
/// fault against it: the services export spans every 500 ms, and a
/// process killed before its next export takes that batch with it.
const EXPORT_MARGIN: f64 = 2.0;

/// I9: at least 99% of the shipped orders whose whole life (placement to
/// the last service's last step for it, plus the span export margin) no
/// fault touched (nor the 5 s after one healed) form one connected trace
/// through all five services.
pub async fn traces_whole(
    stack: &Stack,
    history: &[Placement],
    orders: &HashMap<String, Order>,
    faults: &[Injected],
    epoch: SystemTime,
) -> Result<Verdict> {
    let settled = settled(stack, epoch).await?;
    let calm = |placed: f64, order: &str| {
        let end = settled.get(order).map_or(f64::MAX, |at| at + EXPORT_MARGIN);
        faults.iter().all(|f| end < f.began || placed > f.healed + 5.0)
    };
    let mut sample: Vec<(&str, &str)> = history
        .iter()
        .rev()
        .filter_map(|p| match &p.outcome {
            Outcome::Accepted { order_id, trace_id } if !trace_id.is_empty() && calm(p.at, order_id) => {
                Some((order_id.as_str(), trace_id.as_str()))
            }
            _ => None,
        })
        .filter(|(id, _)| orders.get(*id).is_some_and(|o| o.status == "SHIPPED"))
        .take(TRACES_SAMPLED)
        .collect();
    sample.reverse();
    let catalog = Catalog::under(stack.topic_prefix());
    let http = reqwest::Client::new();
    let mut broken = Vec::new();
    // The services export spans in batches every 500 ms: the last orders'
    // traces may still be on their way. They all get the same 10 s, not
    // 10 s each: a trace that is not whole by then stays broken.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    for (order, trace_id) in &sample {
        let problems = loop {
            let problems = match http
                .get(format!("{}/api/traces/{trace_id}", stack.traces_url))
                .send()
                .await
            {
                Ok(resp) if resp.status().is_success() => {
                    let body: serde_json::Value = resp.json().await.unwrap_or_default();
                    trace_problems(&body["data"][0], order, &catalog)
                }
                Ok(resp) => vec![format!("the viewer answers {}", resp.status())],
                Err(e) => vec![format!("the viewer: {e}")],
            };
            if problems.is_empty() || tokio::time::Instant::now() > deadline {
                break problems;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        };
        if !problems.is_empty() {
            broken.push(format!("{order} (trace {trace_id}): {}", problems.join("; ")));
        }
    }
    // At most 1% may be broken; the verdict lists them all either way.
    let allowed = sample.len() / 100;
    let mut verdict = Verdict::new(
        "I9",
        "at least 99% of the shipped orders no fault touched from placement to their last step form one whole trace through all five services",
        sample.len(),
        broken.clone(),
    );
    verdict.holds = broken.len() <= allowed && !sample.is_empty();
    if sample.is_empty() {
        verdict
            .counterexamples
            .push("no fault-free shipped order to look at".into());
    }
    Ok(verdict)
}
