//! On call, through the `omnisaga` CLI against a live stack: an order
//! parked behind a dead letter at the order service (a poison record on the
//! payments topic before payment's answer) is found with `orders find` by
//! status, channel and age, and as stuck once ORDER_STUCK_AFTER_MS passed;
//! `order why` says what it waits for and on whom, the dead letter that
//! parks it, its partition's lag, its deadlines and its trace. An order
//! placed while payment was down says payment does not answer, and once
//! payment is back ships and waits for nothing. A replay cannot get past
//! a record no service can read; discarding it, with a reason, lets the
//! order go on.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use omnisaga_e2e::{
    client::{order_body, wait_for, Client},
    Stack, StackOptions,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_parked_behind_a_dead_letter_is_found_stuck_and_explained() -> Result<()> {
    let options =
        StackOptions::for_test()
            .warehouse_ms(20, 0, 20)
            .set_env("order", "ORDER_STUCK_AFTER_MS", "3000");
    let mut stack = Stack::start(options).await?;
    let result = run(&mut stack).await;
    stack.finish(result.is_ok()).await?;
    result
}

async fn run(stack: &mut Stack) -> Result<()> {
    let c = Client::new(stack);
    // Payment down while two orders are placed; a record the order service
    // cannot read on the payments topic under the second one's key:
    // payment's answer, once it is back, is parked behind it. The first
    // goes on once payment is back.
    stack.stop_service("payment").await?;
    let waiting = c.place(&with_channel("web", "on-call-1")).await?;
    let parked = c.place(&with_channel("pos", "on-call-2")).await?;
    let out = stack.omnisaga(&["order", "why", &waiting]).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    println!("order why {waiting} (payment down):\n{text}");
    for expected in [
        "waits for: PaymentAuthorized or PaymentFailed from payment",
        "dead letters: none",
        "lag: payment reads",
        "payment: no answer",
    ] {
        ensure!(
            text.contains(expected),
            "order why lacks {expected:?}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let topic = format!("{}payments.v1", stack.topic_prefix());
    omnisaga_e2e::produce_raw(&stack.kafka, &topic, &parked, b"\x08\x96\x01 not an envelope").await?;
    let letters_url = format!("{}/v1/admin/dead-letters?key={parked}", stack.admin_url("order"));
    wait_for("the order service to park the order", WAIT, || async {
        let body = c.get(&letters_url).await?;
        Ok(body["parked_keys"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == parked.as_str()))
            .then_some(()))
    })
    .await?;
    stack.start_service("payment").await?;
    c.wait_status(&waiting, "SHIPPED", WAIT).await?;
    let payment_url = format!("{}/v1/payments/{parked}", stack.admin_url("payment"));
    wait_for("payment to authorize the parked order", WAIT, || async {
        let p = c.get(&payment_url).await.ok();
        Ok(p.filter(|p| p["status"] == "AUTHORIZED").map(|_| ()))
    })
    .await?;

    orders_find_lists_it_by_its_filters_and_as_stuck(stack, &c, &parked, &waiting).await?;
    order_why_names_the_dead_letter_the_lag_the_deadline_and_the_trace(stack, &parked, &waiting).await?;
    a_record_no_one_can_read_is_not_replayed(stack, &parked).await?;
    a_discarded_record_lets_the_order_go_on(stack, &c, &parked).await
}

/// Discarding the record no one can read, with a reason, at every service
/// that parked the order behind it (each consumer of the payments topic),
/// replays the order's later records there: the order ships, no key stays
/// parked, and each record is kept with the reason.
async fn a_discarded_record_lets_the_order_go_on(stack: &Stack, c: &Client, parked: &str) -> Result<()> {
    let reason = "a corrupt record: payment's answer follows it";
    for service in ["order", "warehouse", "notification", "analytics"] {
        let letters = omnisaga_json(stack, &["dlq", "list", service, "--key", parked, "--json"]).await?;
        let poison = letters["items"][0]["id"]
            .as_i64()
            .with_context(|| format!("{service} parked the order: {letters}"))?;
        let id = poison.to_string();
        // No reason, no discard.
        let refused = stack
            .omnisaga(&["dlq", "discard", service, &id, "--reason", " "])
            .await?;
        ensure!(!refused.status.success(), "{service} took a blank reason");
        let report = omnisaga_json(stack, &["dlq", "discard", service, &id, "--reason", reason]).await?;
        println!("dlq discard {service} {poison}:\n{report:#}");
        ensure!(
            report["discarded"]["id"] == poison
                && report["reason"] == reason
                && report["replay"]["report"]["remaining"] == 0
                && report["replay"]["report"]["replayed"]
                    .as_u64()
                    .is_some_and(|n| n >= 1),
            "{report}"
        );
        let letters = omnisaga_json(stack, &["dlq", "list", service, "--key", parked, "--json"]).await?;
        ensure!(
            letters["items"].as_array().is_some_and(Vec::is_empty)
                && !letters["parked_keys"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == parked)),
            "{service}: {letters}"
        );
    }
    c.wait_status(parked, "SHIPPED", WAIT).await?;
    Ok(())
}

/// The fix of a parked order is a replay once the cause is fixed; a
/// record no service can read fails again, and says so.
async fn a_record_no_one_can_read_is_not_replayed(stack: &Stack, parked: &str) -> Result<()> {
    let out = stack.omnisaga(&["dlq", "list", "order", "--key", parked]).await?;
    println!(
        "dlq list order --key {parked}:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report = omnisaga_json(stack, &["dlq", "replay", "order", parked]).await?;
    println!("dlq replay order {parked}:\n{report:#}");
    let report = &report["replays"][0]["report"];
    ensure!(
        report["replayed"] == 0
            && report["remaining"].as_i64().is_some_and(|n| n >= 1)
            && report["error"]
                .as_str()
                .is_some_and(|e| e.contains("undecodable")),
        "{report}"
    );
    Ok(())
}

fn with_channel(channel: &str, customer: &str) -> Value {
    let mut body = order_body("SKU-MUG", 1, "tok_visa", customer);
    body["channel"] = channel.into();
    body
}

fn ids(found: &Value) -> Vec<String> {
    found["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["order_id"].as_str().map(str::to_owned))
        .collect()
}

async fn orders_find_lists_it_by_its_filters_and_as_stuck(
    stack: &Stack,
    c: &Client,
    parked: &str,
    shipped: &str,
) -> Result<()> {
    let found = omnisaga_json(
        stack,
        &[
            "orders",
            "find",
            "--status",
            "PLACED",
            "--older-than",
            "1s",
            "--channel",
            "pos",
            "--json",
        ],
    )
    .await?;
    ensure!(
        ids(&found) == [parked],
        "find by status, age and channel: {found}"
    );
    let found = omnisaga_json(stack, &["orders", "find", "--json"]).await?;
    ensure!(ids(&found) == [parked, shipped], "newest first: {found}");
    // Unchanged for longer than ORDER_STUCK_AFTER_MS (3 s here): stuck.
    wait_for("the parked order to be stuck", WAIT, || async {
        let found = omnisaga_json(stack, &["orders", "find", "--stuck", "--json"]).await?;
        Ok((ids(&found) == [parked]).then_some(()))
    })
    .await?;
    // The gauge behind the SagaStuck alert counts the same order.
    let metrics = c
        .http
        .get(format!("{}/metrics", stack.url("order")))
        .send()
        .await?
        .text()
        .await?;
    let gauge = metrics
        .lines()
        .find(|l| l.starts_with("omnisaga_sagas_stuck{") && l.contains("status=\"PLACED\""))
        .unwrap_or_default();
    println!("{gauge}");
    ensure!(gauge.ends_with(" 1"), "the stuck gauge says {gauge:?}");
    let out = stack.omnisaga(&["orders", "find", "--stuck"]).await?;
    let table = String::from_utf8_lossy(&out.stdout);
    println!("orders find --stuck:\n{table}");
    let row = table.lines().find(|l| l.contains(parked)).unwrap_or_default();
    ensure!(
        out.status.success() && ["PLACED", "pos", "yes"].iter().all(|w| row.contains(w)),
        "orders find --stuck printed: {table}"
    );
    let out = stack.omnisaga(&["orders", "find", "--status", "LOST"]).await?;
    ensure!(!out.status.success(), "an unknown status was taken");
    Ok(())
}

async fn order_why_names_the_dead_letter_the_lag_the_deadline_and_the_trace(
    stack: &Stack,
    parked: &str,
    shipped: &str,
) -> Result<()> {
    let why = omnisaga_json(stack, &["order", "why", parked, "--json"]).await?;
    let at_order: Vec<&Value> = why["dead_letters"]
        .as_array()
        .context("dead_letters")?
        .iter()
        .filter(|d| d["service"] == "order")
        .collect();
    ensure!(
        at_order.first().is_some_and(|d| d["parked"] == true),
        "no parked dead letter at the order service: {why}"
    );
    let letter = &at_order[0]["letter"];
    let hop = why["lag"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|h| h["service"] == "order")
        .with_context(|| format!("no lag of the order service's consumer: {why}"))?;
    ensure!(
        hop["topic"] == letter["topic"]
            && hop["partition"] == letter["partition"]
            && hop["progress"]["lag"].is_i64(),
        "the order's partition is not the dead letter's: {why}"
    );
    ensure!(
        why["waiting"]["owed_by"] == "payment" && why["order"]["stuck"] == true,
        "{why}"
    );

    let out = stack.omnisaga(&["order", "why", parked]).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    println!("order why {parked}:\n{text}");
    let trace = format!("{}/trace/", stack.traces_url.trim_end_matches('/'));
    for expected in [
        "PLACED",
        "STUCK",
        "waits for: PaymentAuthorized or PaymentFailed from payment",
        &format!(
            "PARKED at order (consumer order) behind dead letter #{}",
            letter["id"]
        ),
        "later record(s) of the order wait behind it",
        &format!("omnisaga dlq replay order {parked}"),
        "also PARKED at warehouse",
        &format!(
            "lag: order reads {}[{}]",
            letter["topic"].as_str().unwrap_or("?"),
            letter["partition"]
        ),
        "lag: payment reads",
        "deadline: ",
        &trace,
    ] {
        ensure!(
            out.status.success() && text.contains(expected),
            "order why lacks {expected:?}: {text}"
        );
    }

    let out = stack.omnisaga(&["order", "why", shipped]).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    println!("order why {shipped} (payment back):\n{text}");
    ensure!(
        text.contains("SHIPPED")
            && text.contains("waits for: nothing")
            && text.contains("dead letters: none"),
        "a shipped order: {text}"
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    let out = stack.omnisaga(&["order", "why", &unknown]).await?;
    ensure!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not found"),
        "an unknown order: {:?}",
        out
    );
    Ok(())
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
