//! The dead-letter workbench's `skip` and `redrive` through the `omnisaga`
//! CLI against a live stack. While payment is stopped three orders are
//! placed: one gets a record every consumer of the payments topic reads
//! and rejects (a `PaymentAuthorized` of no order) before payment's
//! answer, and payment's database refuses the placements of the other two
//! (the "bug"), so payment dead-letters their `OrderPlaced`. `dlq skip` at
//! each service that parked the first lets it ship; `dlq redrive all`
//! lists the two in a dry run and changes nothing, refuses a window that
//! ends before it starts, and once the bug is fixed replays both: they ship.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use omnisaga_e2e::{
    chaos::dead_letters::{self, Workbench, PAYMENTS_CONSUMERS},
    client::{order_body, Client},
    Stack, StackOptions,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_record_and_a_redrive_after_a_fix_let_parked_orders_ship() -> Result<()> {
    let mut stack = Stack::start(StackOptions::for_test().warehouse_ms(20, 0, 20)).await?;
    let result = run(&mut stack).await;
    stack.finish(result.is_ok()).await?;
    result
}

async fn run(stack: &mut Stack) -> Result<()> {
    let c = Client::new(stack);
    let help = stack.omnisaga(&["dlq", "--help"]).await?;
    let help = String::from_utf8_lossy(&help.stdout);
    ensure!(help.contains("skip") && help.contains("redrive"), "{help}");

    stack.stop_service("payment").await?;
    let skipped = c.place(&order_body("SKU-MUG", 1, "tok_visa", "dlq-1")).await?;
    let held = [
        c.place(&order_body("SKU-MUG", 1, "tok_visa", "dlq-2")).await?,
        c.place(&order_body("SKU-MUG", 1, "tok_visa", "dlq-3")).await?,
    ];
    let payments = format!("{}payments.v1", stack.topic_prefix());
    omnisaga_e2e::produce_raw(&stack.kafka, &payments, &skipped, &dead_letters::bogus()).await?;
    dead_letters::hold_payments(stack, &held).await?;
    stack.start_service("payment").await?;
    let bench = Workbench::new(stack);
    for order in &held {
        bench.wait_parked("payment", order).await?;
    }

    // skip, at every consumer of the payments topic: the order ships.
    for service in PAYMENTS_CONSUMERS {
        let head = bench.wait_parked(service, &skipped).await?;
        let id = head["id"].to_string();
        let refused = stack
            .omnisaga(&["dlq", "skip", service, &id, "--reason", " "])
            .await?;
        ensure!(!refused.status.success(), "{service} took a blank reason");
        let reason = "a PaymentAuthorized of no order; payment's own answer follows";
        let report = omnisaga_json(stack, &["dlq", "skip", service, &id, "--reason", reason]).await?;
        println!("dlq skip {service} {id}:\n{report:#}");
        ensure!(
            report["skipped"]["id"] == head["id"]
                && report["reason"] == reason
                && report["event_id"].is_string()
                && report["replay"]["report"]["remaining"] == 0,
            "{report}"
        );
    }
    c.wait_status(&skipped, "SHIPPED", WAIT).await?;

    // redrive: a dry run lists the two and changes nothing.
    let filters = ["--topic", "orders.v1", "--type", "OrderPlaced", "--since", "10m"];
    let dry = omnisaga_json(
        stack,
        &[&["dlq", "redrive", "all"][..], &filters, &["--dry-run", "--json"]].concat(),
    )
    .await?;
    println!("dlq redrive all --dry-run:\n{dry:#}");
    ensure!(keys_at(&dry, "payment") == sorted(&held), "{dry}");
    let out = stack
        .omnisaga(&[&["dlq", "redrive", "payment"][..], &filters, &["--dry-run"]].concat())
        .await?;
    println!(
        "dlq redrive payment --dry-run:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for order in &held {
        ensure!(
            !bench.letters("payment", order).await?.is_empty(),
            "a dry run replayed {order}"
        );
    }
    let out = stack
        .omnisaga(&[&["dlq", "redrive", "payment"][..], &filters, &["--until", "20m"]].concat())
        .await?;
    ensure!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("422"),
        "a window that ends before it starts: {out:?}"
    );
    for order in &held {
        ensure!(
            !bench.letters("payment", order).await?.is_empty(),
            "a refused redrive replayed {order}"
        );
    }

    // The fix, then the redrive: both ship.
    dead_letters::release_payments(stack).await?;
    let out = stack
        .omnisaga(&[&["dlq", "redrive", "all"][..], &filters].concat())
        .await?;
    println!("dlq redrive all:\n{}", String::from_utf8_lossy(&out.stdout));
    ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for order in &held {
        c.wait_status(order, "SHIPPED", WAIT).await?;
        ensure!(
            bench.letters("payment", order).await?.is_empty(),
            "{order} still parked"
        );
    }
    Ok(())
}

fn sorted(orders: &[String]) -> Vec<String> {
    let mut out = orders.to_vec();
    out.sort();
    out
}

/// The keys a `dlq redrive --json` answer lists at `service`, sorted.
fn keys_at(answer: &Value, service: &str) -> Vec<String> {
    let mut keys: Vec<String> = answer["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["service"] == service)
        .flat_map(|s| s["keys"].as_array().cloned().unwrap_or_default())
        .filter_map(|k| k["key"].as_str().map(str::to_owned))
        .collect();
    keys.sort();
    keys
}

/// Runs `omnisaga args...`, which must succeed, and parses its output as JSON.
async fn omnisaga_json(stack: &Stack, args: &[&str]) -> Result<Value> {
    let out = stack.omnisaga(args).await?;
    ensure!(
        out.status.success(),
        "omnisaga {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).with_context(|| format!("omnisaga {args:?} printed no JSON"))
}
