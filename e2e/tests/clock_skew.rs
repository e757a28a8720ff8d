//! Clock skew: two payment instances, one with its clock five minutes
//! ahead and one five minutes behind (`CLOCK_SKEW_SECS`), share the queue
//! of provider calls while the provider is slow and answers ambiguously.
//! Their leases are compared with the database's clock, so neither takes a
//! call the other holds (which a lease judged by a clock five minutes ahead
//! would: it would look expired at once); at the provider's ledger no order
//! is authorised twice, a cancelled order's authorisation is voided, and
//! every saga completes.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use omnisaga_e2e::{
    client::{order_body, wait_for, Client},
    pg_server, Stack, StackOptions,
};
use serde_json::json;
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(120);
/// Five minutes: far beyond a provider call's lease (about 15 s here).
const SKEW_SECS: i64 = 300;
/// Logged by a caller that finds its call made by another: the sign of a
/// lease taken while its holder was still calling.
const TAKEN_TWICE: &str = "call already made by another caller";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_instances_with_skewed_clocks_authorise_no_order_twice() -> Result<()> {
    let options = StackOptions::for_test()
        .instances("payment", 2)
        .set_env("payment", "CLOCK_SKEW_SECS", &SKEW_SECS.to_string())
        .set_env("payment-2", "CLOCK_SKEW_SECS", &(-SKEW_SECS).to_string())
        // Slow and ambiguous: calls overlap, and many are asked again.
        .set_env("payment", "PAYMENT_PROVIDER_LATENCY_MS", "300")
        .set_env("payment", "PAYMENT_PROVIDER_TIMEOUT_MS", "1000")
        .set_env("payment", "PAYMENT_AMBIGUOUS_RATE", "0.3")
        .set_env("payment", "PAYMENT_PROVIDER_CALLERS", "2")
        .warehouse_ms(20, 0, 20);
    let stack = Stack::start(options).await?;
    let result = run(&stack).await;
    stack.finish(result.is_ok()).await?;
    result
}

async fn run(stack: &Stack) -> Result<()> {
    let c = Client::new(stack);
    let tokens = [
        "tok_visa",
        "tok_visa",
        "tok_charged_unavailable",
        "tok_charged_timeout",
    ];
    let mut orders = Vec::new();
    for i in 0..32 {
        let token = tokens[i % tokens.len()];
        let id = c
            .place(&order_body("SKU-MUG", 1, token, &format!("skew-{}", i % 8)))
            .await?;
        // Every fourth order is cancelled by its customer at once: an
        // authorisation it got meanwhile must be voided.
        if i % 4 == 3 {
            let url = format!("{}/v1/orders/{id}/cancel", c.order);
            c.send(reqwest::Method::POST, &url, None, &json!({})).await?;
        }
        orders.push(id);
    }

    let db = PgPool::connect(&format!("{}/{}", pg_server(), stack.database("payment")))
        .await
        .context("the payment database")?;
    for id in &orders {
        let status = wait_for(&format!("order {id} to end"), WAIT, || async {
            let o = c.order(id).await?;
            let s = o["status"].as_str().unwrap_or("").to_owned();
            Ok(["SHIPPED", "CANCELLED"].contains(&s.as_str()).then_some(s))
        })
        .await?;
        let timeline = c.timeline(id).await?;
        let authorised = timeline.iter().filter(|e| *e == "PaymentAuthorized").count();
        ensure!(
            authorised <= 1,
            "{id} authorised {authorised} times: {timeline:?}"
        );
        // What the provider holds settles once the void (if any) is made.
        let want = i64::from(status == "SHIPPED");
        let held = wait_for(
            &format!("the provider to hold {want} approval for {id}"),
            WAIT,
            || async {
                let held: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM provider_ledger
                 WHERE payment_id LIKE $1 AND outcome = 'APPROVED' AND voided_at IS NULL",
                )
                .bind(format!("pay-{id}-%"))
                .fetch_one(&db)
                .await?;
                Ok((held == want).then_some(held))
            },
        )
        .await;
        ensure!(held.is_ok(), "{id} ({status}): {held:?}; timeline {timeline:?}");
    }

    for label in ["payment", "payment-2"] {
        let log = std::fs::read_to_string(stack.log_path(label))?;
        let twice = log.lines().filter(|l| l.contains(TAKEN_TWICE)).count();
        ensure!(
            twice == 0,
            "{label}: {twice} provider calls were taken while another caller held them"
        );
    }
    Ok(())
}
