//! `omnisaga reconcile` against a live stack, which nothing stops: a clean
//! run finds nothing; then one fault of each kind, planted with SQL as the
//! owner of the database it breaks, is found with its order (a second
//! approval in the provider's ledger, an outbox row the relay cannot
//! publish, a shipped order whose customer was never told, an order stuck
//! in PAID, a SKU whose shipped count does not add up), no order is blamed
//! that was not broken, and the counts reach a Pushgateway (a fake one).

use std::{sync::Arc, time::Duration};

use anyhow::{ensure, Context, Result};
use axum::{body::Bytes, extract::State, routing::put, Router};
use chrono::Utc;
use omnisaga_e2e::{
    client::{order_body, wait_for, Client},
    Stack, StackOptions,
};
use serde_json::Value;
use sqlx::{Connection as _, PgConnection};
use tokio::sync::Mutex;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_finds_nothing_on_a_clean_stack_and_each_planted_fault_with_its_order() -> Result<()> {
    let stack = Stack::start(StackOptions::for_test().warehouse_ms(20, 0, 20)).await?;
    let result = run(&stack).await;
    stack.finish(result.is_ok()).await?;
    result
}

async fn run(stack: &Stack) -> Result<()> {
    let since = (Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let c = Client::new(stack);
    let mut orders = Vec::new();
    for customer in ["rec-a", "rec-b", "rec-c", "rec-d", "rec-e"] {
        orders.push(c.place(&order_body("SKU-MUG", 1, "tok_visa", customer)).await?);
    }
    for id in &orders {
        c.wait_status(id, "SHIPPED", WAIT).await?;
        c.wait_message(id, "shipped", WAIT).await?;
    }
    let window = ["--since", since.as_str(), "--until", "0s", "--json"];

    // Clean: once the last events are published, nothing is found.
    let clean = wait_for("a clean reconciliation", WAIT, || async {
        let (code, report) = reconcile(stack, &window).await?;
        Ok((code == Some(0)).then_some(report))
    })
    .await?;
    ensure!(clean["holds"] == true, "{clean:#}");
    ensure!(
        clean["shipped_checked"].as_u64() >= Some(orders.len() as u64),
        "the shipped orders were checked: {clean:#}"
    );
    for (invariant, service) in [
        ("shipped_paid", "payment"),
        ("shipped_told", "notification"),
        ("stock_conserved", "warehouse"),
        ("ledger_matches_streams", "payment"),
    ] {
        let checked = verdict(&clean, invariant, service)?["checked"].as_u64();
        ensure!(checked > Some(0), "{invariant} checked nothing: {clean:#}");
    }

    let [a, b, c_, d, _] = orders.as_slice() else {
        unreachable!()
    };
    plant(stack, a, b, c_, d).await?;

    let sink = Pushgateway::start().await?;
    let push = ["--push", sink.url.as_str()];
    let args: Vec<&str> = window.iter().chain(push.iter()).copied().collect();
    let (code, found) = reconcile(stack, &args).await?;
    ensure!(code == Some(2), "counterexamples exit 2, not {code:?}: {found:#}");
    ensure!(found["holds"] == false, "{found:#}");
    let blamed = |invariant: &str, order: &str| {
        found["counterexamples"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["invariant"] == invariant && c["order_id"] == order)
    };
    for (invariant, order, fault) in [
        ("ledger_matches_streams", a, "a second approval in the ledger"),
        ("outbox_published", b, "an outbox row left unpublished"),
        ("shipped_told", c_, "a shipped order never told"),
        ("nothing_stuck", d, "an order stuck in PAID"),
    ] {
        ensure!(
            blamed(invariant, order),
            "{fault} ({order}) not found as {invariant}: {found:#}"
        );
    }
    let stock = found["counterexamples"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["invariant"] == "stock_conserved" && c["subject"] == "SKU SKU-MUG");
    ensure!(
        stock,
        "the shipped count of SKU-MUG that does not add up was not found: {found:#}"
    );
    for c in found["counterexamples"].as_array().into_iter().flatten() {
        let order = c["order_id"].as_str();
        ensure!(
            order.is_none_or(|o| [a, b, c_, d].iter().any(|x| *x == o)),
            "an order nothing broke was blamed: {c}"
        );
    }

    let pushed = sink.received().await.context("nothing was pushed")?;
    ensure!(
        pushed.0 == "/metrics/job/omnisaga_reconcile",
        "pushed to {}",
        pushed.0
    );
    for line in [
        "omnisaga_reconcile_counterexamples{invariant=\"shipped_told\",service=\"notification\"} 1",
        "omnisaga_reconcile_counterexamples{invariant=\"outbox_published\",service=\"order\"} 1",
        "omnisaga_reconcile_counterexamples{invariant=\"shipped_paid\",service=\"payment\"} 0",
        "omnisaga_reconcile_last_success_timestamp_seconds ",
    ] {
        ensure!(pushed.1.contains(line), "the push lacks {line:?}:\n{}", pushed.1);
    }

    // The table names the order and the invariant; a window that ends
    // before it starts is refused, nothing checked.
    let started = std::time::Instant::now();
    let out = stack
        .omnisaga(&["reconcile", "--since", since.as_str(), "--until", "0s"])
        .await?;
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("omnisaga reconcile ({:?}):\n{table}", started.elapsed());
    ensure!(out.status.code() == Some(2), "{table}");
    ensure!(
        table.contains(c_.as_str()) && table.contains("shipped_told"),
        "{table}"
    );
    let out = stack
        .omnisaga(&["reconcile", "--since", "1m", "--until", "1h"])
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.code() == Some(1) && stderr.contains("since must be before until"),
        "{stderr}"
    );
    Ok(())
}

/// One fault per invariant, each written as the database's owner.
async fn plant(stack: &Stack, a: &str, b: &str, c: &str, d: &str) -> Result<()> {
    let mut payment = owner(stack, "payment").await?;
    // The provider approved a second attempt the payment stream never recorded.
    sqlx::query(
        "INSERT INTO provider_ledger (payment_id, outcome, answered_at) VALUES ($1, 'APPROVED', now() - interval '20 seconds')",
    )
    .bind(format!("pay-{a}-2"))
    .execute(&mut payment)
    .await?;
    // A row of b's for a topic the broker does not have: the relay never publishes it.
    let mut order = owner(stack, "order").await?;
    sqlx::query(
        "INSERT INTO outbox (topic, message_key, payload, headers, created_at)
         SELECT $2, message_key, payload, headers, now() - interval '10 minutes'
         FROM outbox WHERE message_key = $1 ORDER BY id LIMIT 1",
    )
    .bind(b)
    .bind(format!("{}reconcile.nowhere", stack.topic_prefix()))
    .execute(&mut order)
    .await?;
    // d's order is seen stuck in PAID for two hours.
    sqlx::query(
        "UPDATE order_view SET status = 'PAID', updated_at = now() - interval '2 hours' WHERE order_id = $1::uuid",
    )
    .bind(d)
    .execute(&mut order)
    .await?;
    // c's customer never got the shipped message.
    let mut notification = owner(stack, "notification").await?;
    let deleted = sqlx::query("DELETE FROM notifications WHERE order_id = $1::uuid AND template = 'shipped'")
        .bind(c)
        .execute(&mut notification)
        .await?;
    ensure!(deleted.rows_affected() == 1, "c's shipped message");
    // One mug more shipped than the shipped pick tasks held.
    let mut warehouse = owner(stack, "warehouse").await?;
    sqlx::query("UPDATE shipped SET quantity = quantity + 1 WHERE sku = 'SKU-MUG'")
        .execute(&mut warehouse)
        .await?;
    Ok(())
}

async fn owner(stack: &Stack, service: &str) -> Result<PgConnection> {
    let url = format!("{}/{}", omnisaga_e2e::pg_server(), stack.database(service));
    PgConnection::connect(&url)
        .await
        .with_context(|| format!("Failed to connect to {url}"))
}

/// The verdict of `invariant` as `service` checked it.
fn verdict<'a>(report: &'a Value, invariant: &str, service: &str) -> Result<&'a Value> {
    report["verdicts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["invariant"] == invariant && v["service"] == service)
        .with_context(|| format!("no verdict of {invariant} by {service}: {report:#}"))
}

/// Runs `omnisaga reconcile args...`: its exit code and its JSON.
async fn reconcile(stack: &Stack, args: &[&str]) -> Result<(Option<i32>, Value)> {
    let args: Vec<&str> = std::iter::once("reconcile").chain(args.iter().copied()).collect();
    let out = stack.omnisaga(&args).await?;
    let report = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "omnisaga {args:?} printed no JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok((out.status.code(), report))
}

/// The last PUT a [`Pushgateway`] took: its path and body.
type Last = Arc<Mutex<Option<(String, String)>>>;

/// A Pushgateway that keeps the last PUT.
struct Pushgateway {
    url: String,
    last: Last,
}

impl Pushgateway {
    async fn start() -> Result<Self> {
        let last = Arc::new(Mutex::new(None));
        let app = Router::new()
            .route(
                "/metrics/job/{job}",
                put(
                    |State(last): State<Last>, uri: axum::http::Uri, body: Bytes| async move {
                        *last.lock().await =
                            Some((uri.path().to_owned(), String::from_utf8_lossy(&body).into_owned()));
                    },
                ),
            )
            .with_state(last.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, last })
    }

    async fn received(&self) -> Option<(String, String)> {
        self.last.lock().await.clone()
    }
}
