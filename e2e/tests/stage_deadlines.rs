//! Every waiting stage has a deadline, through the live stack: an order
//! placed while payment and the warehouse are down waits in PLACED past
//! ORDER_PLACED_DEADLINE_MS while payment's answer is owed, and is
//! escalated there (OrderEscalated: the customer gets one "order delayed"
//! message, operators find it with `orders find --escalated`, `order why`
//! says so, the gauge behind SagaEscalated counts it). Payment comes back:
//! its answer, arriving after the escalation, moves the order on (not
//! cancelled); in PAID, with the warehouse still down, it is escalated once
//! more; the warehouse comes back and the order ships. Once per stage, no
//! second message for a stage however many looks pass.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use omnisaga_e2e::{
    client::{order_body, wait_for, Client},
    Stack, StackOptions,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_waiting_past_its_stages_deadlines_is_escalated_once_per_stage_and_still_ships() -> Result<()>
{
    let options = StackOptions::for_test()
        .warehouse_ms(20, 0, 20)
        .set_env("order", "ORDER_PLACED_DEADLINE_MS", "2000")
        .set_env("order", "ORDER_PAID_DEADLINE_MS", "2000")
        .set_env("order", "ORDER_READY_FOR_SHIPMENT_DEADLINE_MS", "600000")
        .set_env("order", "ORDER_PAYMENT_DELAY_NOTICE_MS", "600000")
        .set_env("order", "ORDER_DEADLINE_TICK_MS", "100");
    let mut stack = Stack::start(options).await?;
    let result = run(&mut stack).await;
    stack.finish(result.is_ok()).await?;
    result
}

async fn run(stack: &mut Stack) -> Result<()> {
    let c = Client::new(stack);
    stack.stop_service("payment").await?;
    stack.stop_service("warehouse").await?;
    let id = c.place(&order_body("SKU-MUG", 1, "tok_visa", "late-1")).await?;

    // PLACED past its deadline while payment's answer is owed.
    c.wait_message(&id, "order_delayed", WAIT).await?;
    let o = c.order(&id).await?;
    ensure!(o["status"] == "PLACED" && o["escalated"] == true, "{o}");
    wait_for("the gauge to count it escalated in PLACED", WAIT, || async {
        Ok((escalated(&c, "PLACED").await? == 1).then_some(()))
    })
    .await?;
    let found = omnisaga_json(stack, &["orders", "find", "--escalated", "--json"]).await?;
    ensure!(ids(&found) == [id.as_str()], "orders find --escalated: {found}");
    let out = stack.omnisaga(&["order", "why", &id]).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    println!("order why {id} (escalated in PLACED):\n{text}");
    ensure!(
        text.contains("escalated: its stage's deadline passed in PLACED"),
        "order why: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The answer arrives after the escalation and moves the order on.
    stack.start_service("payment").await?;
    wait_for("the order escalated again, in PAID", WAIT, || async {
        let o = c.order(&id).await?;
        Ok((o["status"] == "PAID" && o["escalated"] == true).then_some(()))
    })
    .await?;
    wait_for("two delay messages, one per stage", WAIT, || async {
        let m = c.messages(&id).await?;
        Ok((m.iter().filter(|t| *t == "order_delayed").count() == 2).then_some(()))
    })
    .await?;
    let admin = c
        .get(&format!(
            "{}/v1/admin/orders?escalated=true",
            stack.admin_url("order")
        ))
        .await?;
    ensure!(ids(&admin) == [id.as_str()], "{admin}");

    stack.start_service("warehouse").await?;
    c.wait_status(&id, "SHIPPED", WAIT).await?;
    let timeline = c.timeline(&id).await?;
    let count = |t: &str| timeline.iter().filter(|e| *e == t).count();
    ensure!(
        (count("OrderEscalated"), count("OrderCancelled")) == (2, 0),
        "{timeline:?}"
    );
    let messages = c.messages(&id).await?;
    ensure!(
        messages.iter().filter(|t| *t == "order_delayed").count() == 2,
        "{messages:?}"
    );
    wait_for(
        "the gauge to count none escalated once it shipped",
        WAIT,
        || async {
            Ok((escalated(&c, "PLACED").await? == 0 && escalated(&c, "PAID").await? == 0).then_some(()))
        },
    )
    .await?;
    Ok(())
}

/// The order service's `omnisaga_sagas_escalated{status}` as it scrapes it now.
async fn escalated(c: &Client, status: &str) -> Result<i64> {
    let text = c
        .http
        .get(format!("{}/metrics", c.order))
        .send()
        .await?
        .text()
        .await?;
    let label = format!("status=\"{status}\"");
    Ok(text
        .lines()
        .filter(|l| l.starts_with("omnisaga_sagas_escalated{") && l.contains(&label))
        .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map_or(-1, |v| v as i64))
}

fn ids(found: &Value) -> Vec<&str> {
    found["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["order_id"].as_str())
        .collect()
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
