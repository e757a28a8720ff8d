//! The whole saga as a user sees it: the stack as real processes, a real
//! broker and PostgreSQL; 50 orders placed at once over HTTP must all ship,
//! each with its full timeline, exactly four chat messages, and analytics
//! must count them; the trace viewer must hold each order as one whole trace
//! across all five services and every Kafka hop.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{ensure, Context, Result};
use omnisaga_e2e::{
    client::wait_for,
    traces::{convention_problems, stray_traces, trace_problems, Catalog},
    Stack, StackOptions,
};
use serde_json::{json, Value};

const ORDERS: usize = 50;

async fn start_stack() -> Result<Stack> {
    Stack::start(StackOptions::for_test().warehouse_ms(20, 10, 20)).await
}

fn order_body(i: usize) -> Value {
    let skus = ["SKU-MUG", "SKU-TSHIRT-M", "SKU-HOODIE-L", "SKU-BOTTLE"];
    let channel = ["mobile", "web", "pos", "marketplace"][i % 4];
    json!({
        "channel": channel,
        "items": [{"sku": skus[i % 4], "quantity": 1 + i % 3}],
        "shipping_address": {"name": format!("Customer {i}"), "line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "payment_method": "tok_visa",
    })
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value> {
    Ok(http.get(url).send().await?.error_for_status()?.json().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_orders_all_ship_with_their_timeline_messages_and_analytics() -> Result<()> {
    let stack = start_stack().await?;
    let result = run_saga(&stack).await;
    stack.finish(result.is_ok()).await?;
    result
}

async fn run_saga(stack: &Stack) -> Result<()> {
    // An operator's client reads every order; each order is placed with its customer's token.
    let http = stack.admin_client();
    let order_url = stack.url("order").to_owned();
    let started = std::time::Instant::now();

    let placing = (0..ORDERS).map(|i| {
        let (http, url) = (http.clone(), order_url.clone());
        let token = stack.customer_token(&format!("cust-{i}"));
        tokio::spawn(async move {
            let resp = http
                .post(format!("{url}/v1/orders"))
                .bearer_auth(token)
                .header("Idempotency-Key", format!("e2e-{i}"))
                .json(&order_body(i))
                .send()
                .await?;
            ensure!(resp.status() == 201, "order {i}: HTTP {}", resp.status());
            Ok::<Value, anyhow::Error>(resp.json().await?)
        })
    });
    let mut ids = Vec::new();
    for placed in futures::future::join_all(placing).await {
        let body = placed??;
        assert_eq!(body["status"], "PLACED");
        ids.push(body["order_id"].as_str().context("order_id")?.to_owned());
    }

    let orders = wait_for("every order to be SHIPPED", Duration::from_secs(120), || {
        let (http, url, ids) = (http.clone(), order_url.clone(), ids.clone());
        async move {
            let mut orders = Vec::new();
            for id in &ids {
                let order = get_json(&http, &format!("{url}/v1/orders/{id}")).await?;
                if order["status"] != "SHIPPED" {
                    return Ok(None);
                }
                orders.push(order);
            }
            Ok(Some(orders))
        }
    })
    .await?;
    eprintln!("{ORDERS} orders placed and shipped in {:?}", started.elapsed());

    for order in &orders {
        let mut types: Vec<&str> = order["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_type"].as_str().unwrap())
            .collect();
        assert_eq!(types[0], "OrderPlaced", "{order}");
        types.sort_unstable();
        assert_eq!(
            types,
            [
                "OrderPlaced",
                "OrderReadyForShipment",
                "OrderShipped",
                "PaymentAuthorized",
                "PickTaskCreated",
                "StockReserved"
            ],
            "timeline of {}",
            order["order_id"]
        );
        let services: std::collections::BTreeSet<&str> = order["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["service"].as_str().unwrap())
            .collect();
        assert_eq!(services, ["order", "payment", "warehouse"].into_iter().collect());
    }

    let notify_url = stack.url("notification").to_owned();
    for id in &ids {
        let templates = wait_for("four messages per order", Duration::from_secs(30), || {
            let (http, url) = (http.clone(), format!("{notify_url}/v1/orders/{id}/notifications"));
            async move {
                let body = get_json(&http, &url).await?;
                let items = body["items"].as_array().cloned().unwrap_or_default();
                let sent = items.iter().filter(|n| n["status"] == "SENT").count();
                Ok((items.len() >= 4 && sent == items.len()).then_some(items))
            }
        })
        .await?;
        let mut names: Vec<&str> = templates
            .iter()
            .map(|n| n["template"].as_str().unwrap())
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "order_created",
                "payment_confirmed",
                "ready_for_shipment",
                "shipped"
            ],
            "order {id}"
        );
    }

    let summary_url = format!("{}/v1/summary", stack.url("analytics"));
    let summary = wait_for("analytics to count every order", Duration::from_secs(30), || {
        let (http, url) = (http.clone(), summary_url.clone());
        async move {
            let s = get_json(&http, &url).await?;
            Ok((s["orders"]["shipped"] == ORDERS).then_some(s))
        }
    })
    .await?;
    assert_eq!(summary["orders"]["placed"], ORDERS);
    assert_eq!(summary["orders"]["shipped"], ORDERS);
    assert_eq!(summary["payments"]["success_share"], 1.0);
    assert_eq!(summary["fulfilment_ms"]["placed_to_shipped"]["count"], ORDERS);
    assert!(
        summary["fulfilment_ms"]["placed_to_ready_for_shipment"]["p50"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let traced = orders
        .iter()
        .map(|o| {
            let order = o["order_id"].as_str().context("order_id")?;
            let trace = o["trace_id"].as_str().context("the order has no trace_id")?;
            Ok((order.to_owned(), trace.to_owned()))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    check_traces(&http, &stack.traces_url, &traced, stack.topic_prefix()).await?;
    check_metrics(&http, stack).await?;
    check_logs(stack, &orders)?;
    Ok(())
}

/// The services' logs: JSON, traced, with request ids, and no customer data.
fn check_logs(stack: &Stack, orders: &[Value]) -> Result<()> {
    use omnisaga_e2e::logs::{self, PlacedOrder};
    let mut all = Vec::new();
    for service in SERVICES {
        all.push((service, logs::read(&stack.log_path(service))?));
    }
    let placed: Vec<PlacedOrder<'_>> = orders
        .iter()
        .map(|o| PlacedOrder {
            order_id: o["order_id"].as_str().unwrap_or_default(),
            trace_id: o["trace_id"].as_str().unwrap_or_default(),
        })
        .collect();
    let secrets = ["tok_visa", "1 Main St", "Customer 7"];
    let problems = logs::problems(&all, &placed, &secrets);
    ensure!(problems.is_empty(), "log problems: {problems:#?}");
    Ok(())
}

/// Sum of the samples of `name` whose labels include every pair of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, label_text) = series.split_once('{').unwrap_or((series, ""));
        if metric != name
            || !labels
                .iter()
                .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")))
        {
            continue;
        }
        *found.get_or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    found
}

/// Each service's `/metrics` counts what the saga did.
async fn check_metrics(http: &reqwest::Client, stack: &Stack) -> Result<()> {
    let mut text = std::collections::HashMap::new();
    for service in SERVICES {
        let body = http
            .get(format!("{}/metrics", stack.url(service)))
            .send()
            .await?
            .text()
            .await?;
        text.insert(service, body);
    }
    let n = ORDERS as f64;
    let posted = sample(
        &text["order"],
        "http_server_requests_total",
        &[("route", "/v1/orders"), ("status", "201")],
    );
    assert_eq!(posted, Some(n), "order requests");
    let authorized = sample(
        &text["payment"],
        "omnisaga_payment_outcomes_total",
        &[("outcome", "authorized")],
    );
    assert_eq!(authorized, Some(n), "payment outcomes");
    let shipped = sample(
        &text["analytics"],
        "omnisaga_saga_stage_duration_seconds_count",
        &[("stage", "placed_to_shipped")],
    );
    assert_eq!(shipped, Some(n), "saga stage durations");
    assert_eq!(
        sample(
            &text["warehouse"],
            "omnisaga_pick_backlog",
            &[("status", "READY")]
        ),
        Some(0.0)
    );
    for service in SERVICES {
        let t = &text[service];
        assert!(
            t.contains(&format!("service=\"{service}\"")),
            "{service} metrics lack the service label"
        );
        if service != "analytics" {
            // Analytics owns no topic; every other service published at least one event per order.
            let published = sample(t, "omnisaga_outbox_published_total", &[]).unwrap_or(0.0);
            assert!(published >= n, "{service} published {published}");
        }
        assert_eq!(
            sample(t, "omnisaga_outbox_backlog", &[]),
            Some(0.0),
            "{service} outbox backlog"
        );
        let handled = sample(t, "omnisaga_consumer_handled_total", &[("outcome", "ok")]).unwrap_or(0.0);
        assert!(handled >= n, "{service} handled {handled}");
        assert!(
            sample(t, "omnisaga_consumer_lag", &[]).is_some(),
            "{service} reports no consumer lag"
        );
    }
    Ok(())
}

const SERVICES: [&str; 5] = ["order", "payment", "warehouse", "notification", "analytics"];

/// How many traces the viewer keeps (its `TRACES_MAX` default): the listing
/// asks for all of them.
const TRACES_KEPT: usize = 10_000;

/// Asks the trace viewer's query API for each order's trace until every one
/// is whole (see [`omnisaga_e2e::traces`]), then lists the traces it keeps
/// and fails if any other trace holds a span of one of these orders.
async fn check_traces(
    http: &reqwest::Client,
    traces_url: &str,
    own: &BTreeMap<String, String>,
    topic_prefix: &str,
) -> Result<()> {
    let catalog = Catalog::under(topic_prefix);
    let started = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut pending: BTreeMap<String, Vec<String>> = own.keys().map(|o| (o.clone(), Vec::new())).collect();
    loop {
        for (order, problems) in pending.iter_mut() {
            *problems = problems_of_trace(http, traces_url, order, &own[order], &catalog).await?;
        }
        pending.retain(|_, problems| !problems.is_empty());
        if pending.is_empty() || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let listing = get_json(http, &format!("{traces_url}/api/traces?limit={TRACES_KEPT}")).await?;
    let listed = listing["data"].as_array().map(Vec::as_slice).unwrap_or_default();
    for (order, strays) in stray_traces(listed, own) {
        pending.entry(order).or_default().extend(strays);
    }
    let report: Vec<String> = pending
        .iter()
        .take(3)
        .map(|(order, problems)| {
            format!(
                "order {order}, trace {}:\n  {}",
                own[order],
                problems.join("\n  ")
            )
        })
        .collect();
    ensure!(
        pending.is_empty(),
        "{} of {} orders' traces are not whole after {:?}; the first:\n{}",
        pending.len(),
        own.len(),
        started.elapsed(),
        report.join("\n")
    );
    eprintln!(
        "{} traces whole and alone among the {} listed, checked in {:?}",
        own.len(),
        listed.len(),
        started.elapsed()
    );
    Ok(())
}

/// What keeps the trace `trace_id` from being the whole trace of `order`.
async fn problems_of_trace(
    http: &reqwest::Client,
    traces_url: &str,
    order: &str,
    trace_id: &str,
    catalog: &Catalog,
) -> Result<Vec<String>> {
    let resp = http
        .get(format!("{traces_url}/api/traces/{trace_id}"))
        .send()
        .await
        .context("Failed to ask the trace viewer")?;
    if !resp.status().is_success() {
        return Ok(vec![format!("the viewer answers {}", resp.status())]);
    }
    let body: Value = resp.json().await?;
    let trace = &body["data"][0];
    let mut problems = trace_problems(trace, order, catalog);
    problems.extend(convention_problems(trace));
    Ok(problems)
}
