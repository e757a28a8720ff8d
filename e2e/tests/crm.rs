//! What analysts and a CRM read from analytics after real sagas, over HTTP
//! and through the `omnisaga` CLI: the summary of a window holds the orders
//! placed in it and no other, the CSV export of that window has a row per
//! such order, and a customer's payment history lists every payment answer
//! of their orders (an approval per order shipped, the decline of the order
//! paid with a refused card) with the amounts the orders cost, and nothing
//! of another customer's.

use std::{collections::BTreeSet, process::Output, time::Duration};

use anyhow::{ensure, Context, Result};
use chrono::{SecondsFormat, Utc};
use omnisaga_e2e::{
    client::{order_body, wait_for, Client},
    Stack, StackOptions,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windows_summary_its_csv_and_a_customers_payments_after_real_sagas() -> Result<()> {
    let stack = Stack::start(StackOptions::for_test().warehouse_ms(20, 10, 20)).await?;
    let result = run(&stack).await;
    stack.finish(result.is_ok()).await?;
    result
}

async fn run(stack: &Stack) -> Result<()> {
    let c = Client::new(stack);
    let customer = format!("crm-{}", uuid::Uuid::new_v4().simple());
    // Before the window: another customer's order.
    let before = c
        .place(&order_body("SKU-MUG", 1, "tok_visa", "someone-else"))
        .await?;
    c.wait_status(&before, "SHIPPED", WAIT).await?;
    tokio::time::sleep(Duration::from_millis(20)).await; // the window starts after its placement
    let from = Utc::now();
    let shipped = [
        c.place(&order_body("SKU-MUG", 2, "tok_visa", &customer)).await?,
        c.place(&order_body("SKU-BOTTLE", 1, "tok_visa", &customer))
            .await?,
    ];
    let declined = c
        .place(&order_body("SKU-MUG", 1, "tok_decline", &customer))
        .await?;
    for id in &shipped {
        c.wait_status(id, "SHIPPED", WAIT).await?;
    }
    let to = Utc::now() + chrono::Duration::seconds(1);
    let ours: BTreeSet<String> = shipped.iter().chain([&declined]).cloned().collect();
    let totals: Vec<(String, i64)> = {
        let mut t = Vec::new();
        for id in &ours {
            let order = c.order(id).await?;
            t.push((
                id.clone(),
                order["total"]["minor_units"].as_i64().context("a total")?,
            ));
        }
        t
    };

    // The payment history: three answers, each of an order of the customer's.
    let payments_url = format!("{}/v1/customers/{customer}/payments", c.analytics);
    let history = wait_for("analytics to list the three payment answers", WAIT, || async {
        let h = c.get(&payments_url).await?;
        Ok((h["items"].as_array().map_or(0, Vec::len) == 3).then_some(h))
    })
    .await?;
    println!("GET /v1/customers/{customer}/payments:\n{history:#}");
    let items = history["items"].as_array().context("items")?;
    let mut outcomes: Vec<(String, String)> = Vec::new();
    for p in items {
        let order = p["order_id"].as_str().context("order_id")?.to_owned();
        ensure!(ours.contains(&order), "a payment of another order: {p}");
        let total = totals.iter().find(|(id, _)| *id == order).map(|(_, t)| *t);
        ensure!(
            p["amount_minor_units"].as_i64() == total,
            "the amount is not the order's total: {p}"
        );
        ensure!(p["currency"].as_str().is_some_and(|c| c.len() == 3), "{p}");
        outcomes.push((order, p["outcome"].as_str().unwrap_or_default().to_owned()));
    }
    outcomes.sort();
    let mut expected: Vec<(String, String)> = shipped
        .iter()
        .map(|id| (id.clone(), "authorized".to_owned()))
        .collect();
    expected.push((declined.clone(), "declined".to_owned()));
    expected.sort();
    ensure!(
        outcomes == expected,
        "payment outcomes {outcomes:?}, expected {expected:?}"
    );
    let times: Vec<&str> = items.iter().filter_map(|p| p["at"].as_str()).collect();
    ensure!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    let cli = omnisaga_json(stack, &["customer", "payments", &customer, "--json"]).await?;
    ensure!(
        cli["items"] == history["items"],
        "the CLI lists other payments: {cli}"
    );

    // The summary of the window: the customer's three orders, not the one before.
    let rfc = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    let window = [("from", rfc(from)), ("to", rfc(to))];
    let summary = wait_for("analytics to count the window's orders", WAIT, || async {
        let s: Value = c
            .http
            .get(format!("{}/v1/summary", c.analytics))
            .query(&window)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let counted = s["orders"]["shipped"] == 2 && s["payments"]["orders_declined"] == 1;
        Ok(counted.then_some(s))
    })
    .await?;
    println!("GET /v1/summary?from={}&to={}:\n{summary:#}", rfc(from), rfc(to));
    ensure!(summary["orders"]["placed"] == 3, "the window's orders: {summary}");
    ensure!(summary["orders"]["shipped"] == 2, "{summary}");
    ensure!(summary["payments"]["orders_authorized"] == 2, "{summary}");
    ensure!(summary["payments"]["orders_declined"] == 1, "{summary}");
    let all = c.get(&format!("{}/v1/summary", c.analytics)).await?;
    ensure!(all["orders"]["placed"] == 4, "every order: {all}");
    let cli = omnisaga_json(
        stack,
        &["summary", "--from", &rfc(from), "--to", &rfc(to), "--json"],
    )
    .await?;
    ensure!(
        cli["orders"] == summary["orders"],
        "the CLI's summary differs: {cli}"
    );
    let reversed = c
        .http
        .get(format!("{}/v1/summary", c.analytics))
        .query(&[("from", rfc(to)), ("to", rfc(from))])
        .send()
        .await?;
    ensure!(
        reversed.status() == 422,
        "a reversed window answered {}",
        reversed.status()
    );

    // The window's order facts as CSV: a header and the three orders.
    let resp = c
        .http
        .get(format!("{}/v1/exports/orders.csv", c.analytics))
        .query(&window)
        .send()
        .await?
        .error_for_status()?;
    let content_type = resp.headers()["content-type"].to_str()?.to_owned();
    ensure!(content_type.starts_with("text/csv"), "{content_type}");
    let csv = resp.text().await?;
    println!(
        "GET /v1/exports/orders.csv?from={}&to={}:\n{csv}",
        rfc(from),
        rfc(to)
    );
    let lines: Vec<&str> = csv.split_terminator("\r\n").collect();
    ensure!(
        lines
            .first()
            .is_some_and(|h| h.starts_with("order_id,customer_id,channel,placed_at")),
        "{csv}"
    );
    let exported: BTreeSet<String> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap_or_default().to_owned())
        .collect();
    ensure!(
        exported == ours,
        "the export's orders {exported:?}, the window's {ours:?}"
    );
    ensure!(
        lines[1..]
            .iter()
            .all(|l| l.split(',').nth(1) == Some(customer.as_str())),
        "{csv}"
    );
    let out = omnisaga(
        stack,
        &["export", "orders", "--from", &rfc(from), "--to", &rfc(to)],
    )
    .await?;
    ensure!(
        out.status.success(),
        "export orders failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(String::from_utf8(out.stdout)? == csv, "the CLI wrote another CSV");
    Ok(())
}

async fn omnisaga(stack: &Stack, args: &[&str]) -> Result<Output> {
    let token = stack.token("crm", &[omnisaga_auth::Scope::AnalyticsRead]);
    stack.omnisaga_as(args, &token).await
}

/// Runs `omnisaga args...`, which must succeed, and parses its output as JSON.
async fn omnisaga_json(stack: &Stack, args: &[&str]) -> Result<Value> {
    let out = omnisaga(stack, args).await?;
    ensure!(
        out.status.success(),
        "omnisaga {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).with_context(|| format!("omnisaga {args:?} printed no JSON"))
}
