//! Live order updates through the live stack: two instances of the order
//! service on one database; a customer follows all of their orders on the
//! second while an order is placed on the first, and the order's own
//! stream, from its start, on the second: both, read with an SSE client
//! library, see `PLACED -> ... -> SHIPPED` as the saga records it (only
//! forward: payment and the warehouse answer concurrently, so `PAID` may be
//! passed by `READY_FOR_SHIPMENT`), whichever instance records each step,
//! and the order's stream then ends.

use std::{pin::Pin, time::Duration};

use anyhow::{ensure, Context, Result};
use eventsource_stream::{Event, Eventsource as _};
use futures::{Stream, StreamExt as _};
use omnisaga_e2e::{client_with, Stack, StackOptions};
use serde_json::{json, Value};

type Events = Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;

async fn open(http: &reqwest::Client, url: String, last: Option<&str>) -> Result<Events> {
    let mut req = http.get(url).header("Accept", "text/event-stream");
    if let Some(last) = last {
        req = req.header("Last-Event-ID", last);
    }
    let resp = req.send().await?;
    ensure!(resp.status() == 200, "HTTP {}", resp.status());
    let chunks = futures::stream::unfold(resp, |mut r| async move {
        match r.chunk().await {
            Ok(Some(b)) => Some((Ok::<_, reqwest::Error>(b), r)),
            _ => None,
        }
    });
    Ok(Box::pin(chunks.eventsource().map(|e| {
        e.map_err(|e| anyhow::anyhow!("a malformed event: {e:?}"))
    })))
}

/// The statuses `events` reports for `order_id`, each change once, until
/// `SHIPPED` (or the end of the stream); and whether the stream then ended.
async fn statuses(events: &mut Events, order_id: &str) -> Result<Vec<String>> {
    let mut seen: Vec<String> = Vec::new();
    while seen.last().map(String::as_str) != Some("SHIPPED") {
        let Some(e) = tokio::time::timeout(Duration::from_secs(60), events.next())
            .await
            .context("no message for 60 s")?
        else {
            break;
        };
        let data: Value = serde_json::from_str(&e?.data)?;
        let status = data["status"].as_str().context("status")?.to_owned();
        if data["order_id"] == order_id && seen.last() != Some(&status) {
            seen.push(status);
        }
    }
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_placed_on_one_instance_is_followed_live_on_another_until_it_ships() -> Result<()> {
    let stack = Stack::start(
        StackOptions::for_test()
            .instances("order", 2)
            .warehouse_ms(20, 10, 20),
    )
    .await?;
    let result = follow(&stack).await;
    stack.finish(result.is_ok()).await?;
    result
}

async fn follow(stack: &Stack) -> Result<()> {
    let http = client_with(&stack.customer_token("cust-live"));
    let (first, second) = (stack.instance_url("order", 1), stack.instance_url("order", 2));
    let mut all = open(&http, format!("{second}/v1/orders/events"), None).await?;
    let placed: Value = http
        .post(format!("{first}/v1/orders"))
        .header("Idempotency-Key", "e2e-live-1")
        .json(&json!({
            "channel": "mobile",
            "items": [{"sku": "SKU-MUG", "quantity": 1}],
            "shipping_address": {"name": "Ada", "line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"},
            "payment_method": "tok_visa",
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = placed["order_id"].as_str().context("order_id")?.to_owned();
    let mut one = open(&http, format!("{second}/v1/orders/{id}/events"), Some("0")).await?;
    let seen = statuses(&mut one, &id).await?;
    ensure!(goes_forward_to_shipped(&seen), "the order's stream: {seen:?}");
    let end = tokio::time::timeout(Duration::from_secs(10), one.next()).await;
    ensure!(matches!(end, Ok(None)), "the order's stream ends after SHIPPED");
    let all_seen = statuses(&mut all, &id).await?;
    ensure!(
        all_seen == seen,
        "the customer's stream: {all_seen:?}, the order's: {seen:?}"
    );
    Ok(())
}

/// `PLACED` first, `SHIPPED` last, each status after the one before in the saga's order.
fn goes_forward_to_shipped(seen: &[String]) -> bool {
    const ORDER: [&str; 4] = ["PLACED", "PAID", "READY_FOR_SHIPMENT", "SHIPPED"];
    let ranks: Option<Vec<usize>> = seen.iter().map(|s| ORDER.iter().position(|o| o == s)).collect();
    ranks.is_some_and(|r| r.first() == Some(&0) && r.last() == Some(&3) && r.windows(2).all(|w| w[0] < w[1]))
}
