//! The `omnisaga` CLI against the stack as real processes: it decodes an
//! order's events off the topics, lists the catalog with consumer lag, shows
//! one order as every service sees it, replays a parked key, lists dead chat
//! messages, imports a catalog and its stock from files, and says clearly,
//! with a non-zero exit, what it cannot do. One stack for all of it.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use omnisaga_e2e::{
    client::{order_body, wait_for, Client},
    Stack, StackOptions,
};
use omnisaga_proto::v1::{envelope::Payload, Money, OrderPlaced, PaymentRetryRequested};
use omnisaga_runtime::catalog::catalog;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

async fn start_stack() -> Result<Stack> {
    Stack::start(StackOptions::for_test().warehouse_ms(20, 0, 20)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reads_the_topics_the_catalog_an_order_and_dead_letters_of_a_live_stack() -> Result<()> {
    let stack = start_stack().await?;
    let result = run(&stack).await;
    stack.finish(result.is_ok()).await?;
    result
}

async fn run(stack: &Stack) -> Result<()> {
    let c = Client::new(stack);
    let id = c.place(&order_body("SKU-MUG", 1, "tok_visa", "cli")).await?;
    c.wait_status(&id, "SHIPPED", WAIT).await?;
    c.wait_message(&id, "shipped", WAIT).await?;

    no_topic_carries_personal_data(stack).await?;
    events_tail_decodes_the_orders_events_with_their_trace(stack, &id).await?;
    events_tail_follows_new_records_from_a_time(stack, &c).await?;
    events_tail_keeps_a_record_that_does_not_decode(stack).await?;
    topics_lists_every_catalog_topic_with_each_groups_lag(stack).await?;
    order_timeline_shows_every_services_view(stack, &id).await?;
    a_parked_key_is_replayed_through_the_cli(stack).await?;
    no_chat_message_is_dead_when_the_channel_takes_them(stack).await?;
    what_the_cli_cannot_do_fails_with_a_clear_message(stack).await?;
    a_minted_token_is_the_customers_own(stack, &id).await?;
    a_catalog_and_its_stock_imported_from_files_take_orders(stack, &c).await?;
    Ok(())
}

/// `catalog import` and `stock import`: a file with bad rows is refused
/// with each problem at its line in the file and applies nothing; the fixed
/// file is applied (in batches, with `--rows-per-batch`), and sent again
/// applies nothing twice; then the new SKU can be ordered and ships.
async fn a_catalog_and_its_stock_imported_from_files_take_orders(stack: &Stack, c: &Client) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("omnisaga-import-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let file = |name: &str, text: &str| -> Result<String> {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        Ok(path.to_str().context("a UTF-8 path")?.to_owned())
    };
    let admin = stack.admin_client();
    let catalog_skus = || async {
        let body: Value = admin
            .get(format!("{}/v1/catalog", stack.url("order")))
            .send()
            .await?
            .json()
            .await?;
        Ok::<Vec<String>, anyhow::Error>(
            body["items"]
                .as_array()
                .context("items")?
                .iter()
                .filter_map(|i| i["sku"].as_str().map(str::to_owned))
                .collect(),
        )
    };

    let bad = file(
        "bad.csv",
        "sku,name,unit_price_minor,currency\n\nSKU-E2E-PAN,Frying pan,2400,EUR\nSKU-E2E-POT,,0,EUR\n",
    )?;
    let out = stack.omnisaga(&["catalog", "import", &bad]).await?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    ensure!(
        !out.status.success(),
        "a file with bad rows was imported: {stdout}"
    );
    ensure!(
        stderr.contains("nothing was imported"),
        "stderr does not say nothing was imported: {stderr}"
    );
    for expected in ["4", "name", "unit_price_minor"] {
        ensure!(
            stdout.contains(expected),
            "the problems table lacks {expected:?}:\n{stdout}"
        );
    }
    ensure!(
        !catalog_skus().await?.iter().any(|s| s == "SKU-E2E-PAN"),
        "the good row of a refused file was applied"
    );

    let good = file(
        "good.csv",
        "sku,name,unit_price_minor,currency\nSKU-E2E-PAN,Frying pan,2400,EUR\nSKU-E2E-POT,Stock pot,3100,EUR\n",
    )?;
    let args = [
        "catalog",
        "import",
        good.as_str(),
        "--rows-per-batch",
        "1",
        "--json",
    ];
    let first = omnisaga_json(stack, &args).await?;
    let replayed = |v: &Value| -> Vec<bool> {
        v["batches"]
            .as_array()
            .map(|b| b.iter().map(|b| b["replayed"] == true).collect())
            .unwrap_or_default()
    };
    ensure!(replayed(&first) == [false, false], "first import: {first}");
    let again = omnisaga_json(stack, &args).await?;
    ensure!(replayed(&again) == [true, true], "the same file again: {again}");
    let skus = catalog_skus().await?;
    ensure!(
        skus.iter().any(|s| s == "SKU-E2E-PAN") && skus.iter().any(|s| s == "SKU-E2E-POT"),
        "not in the catalog: {skus:?}"
    );

    // The seed's form: a JSON array whose `stock` is the quantity received.
    let seed = file(
        "seed.json",
        r#"[{"sku": "SKU-E2E-PAN", "name": "Frying pan", "unit_price_minor": 2400, "currency": "EUR", "stock": 7}]"#,
    )?;
    for _ in 0..2 {
        omnisaga_json(stack, &["stock", "import", &seed, "--json"]).await?;
    }
    let stock: Value = admin
        .get(format!("{}/v1/stock", stack.admin_url("warehouse")))
        .send()
        .await?
        .json()
        .await?;
    let pan = stock["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["sku"] == "SKU-E2E-PAN"))
        .with_context(|| format!("no stock of the pan: {stock}"))?;
    ensure!(pan["on_hand"] == 7, "the same file twice added twice: {pan}");

    let id = c
        .place(&order_body("SKU-E2E-PAN", 1, "tok_visa", "cli-import"))
        .await?;
    c.wait_status(&id, "SHIPPED", WAIT).await?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// `token mint` signs with the stack's key: the services take the token,
/// and the customer it names sees their own orders and no one else's.
async fn a_minted_token_is_the_customers_own(stack: &Stack, cli_order: &str) -> Result<()> {
    let key_dir = stack.auth_dir();
    let key_dir = key_dir.to_str().context("a UTF-8 path")?;
    let out = stack
        .omnisaga(&[
            "token",
            "mint",
            "--sub",
            "cli",
            "--scope",
            "orders:read",
            "--key-dir",
            key_dir,
        ])
        .await?;
    ensure!(
        out.status.success(),
        "token mint: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout)?.trim().to_owned();
    let http = omnisaga_e2e::client_with(&token);
    let own = http
        .get(format!("{}/v1/orders/{cli_order}", stack.url("order")))
        .send()
        .await?;
    ensure!(own.status() == 200, "the customer's own order: {}", own.status());
    let cancel = http
        .post(format!("{}/v1/orders/{cli_order}/cancel", stack.url("order")))
        .send()
        .await?;
    ensure!(
        cancel.status() == 403,
        "orders:read may not cancel: {}",
        cancel.status()
    );
    let other = omnisaga_e2e::client_with(&stack.customer_token("someone-else"));
    let theirs = other
        .get(format!("{}/v1/orders/{cli_order}", stack.url("order")))
        .send()
        .await?;
    ensure!(
        theirs.status() == 404,
        "another customer's order: {}",
        theirs.status()
    );
    let refused = stack
        .omnisaga(&[
            "token",
            "mint",
            "--sub",
            "x",
            "--scope",
            "root",
            "--key-dir",
            key_dir,
        ])
        .await?;
    ensure!(!refused.status.success(), "an unknown scope is refused");

    // A key of one's own makes tokens this stack does not take.
    let own_dir = std::env::temp_dir().join(format!("omnisaga-keygen-{}", uuid::Uuid::new_v4().simple()));
    let own = own_dir.to_str().context("a UTF-8 path")?;
    let made = stack.omnisaga(&["token", "keygen", "--dir", own]).await?;
    ensure!(
        made.status.success() && own_dir.join("jwks.json").exists(),
        "keygen made no JWKS"
    );
    let out = stack
        .omnisaga(&[
            "token",
            "mint",
            "--sub",
            "cli",
            "--scope",
            "admin",
            "--key-dir",
            own,
        ])
        .await?;
    let foreign = String::from_utf8(out.stdout)?.trim().to_owned();
    let resp = omnisaga_e2e::client_with(&foreign)
        .get(format!("{}/v1/orders/{cli_order}", stack.url("order")))
        .send()
        .await?;
    ensure!(resp.status() == 401, "a token of another key: {}", resp.status());
    std::fs::remove_dir_all(&own_dir)?;
    Ok(())
}

/// Every record of every topic analysts may read, decoded after a whole
/// saga (before this test writes records of its own): no name, street,
/// city, full postal code or payment token of the customer; the country
/// and the postal area stay.
async fn no_topic_carries_personal_data(stack: &Stack) -> Result<()> {
    let topics = ["orders", "payments", "warehouse", "notifications"];
    let mut args = vec!["events", "tail"];
    args.extend(topics);
    args.extend(["--from-beginning", "--json"]);
    let records = tail(stack, &args).await?;
    let placed: Vec<&Value> = records
        .iter()
        .filter(|r| r["envelope"]["event_type"] == "OrderPlaced")
        .collect();
    ensure!(!placed.is_empty(), "no OrderPlaced read: {records:?}");
    let all = serde_json::to_string(&records)?;
    // What the client's order body holds (`client::order_body`).
    for personal in ["Test Customer", "1 Main St", "Berlin", "10115", "tok_visa"] {
        ensure!(!all.contains(personal), "{personal:?} is on a topic: {all}");
    }
    let address = &placed[0]["envelope"]["order_placed"]["shipping_address"];
    ensure!(
        address["country"] == "DE" && address["postal_code"] == "10",
        "the country and postal area stay: {address}"
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

/// Runs `events tail`, which must succeed, and parses its JSON lines.
async fn tail(stack: &Stack, args: &[&str]) -> Result<Vec<Value>> {
    let out = stack.omnisaga(args).await?;
    ensure!(
        out.status.success(),
        "omnisaga {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)?
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("not a JSON line: {l}")))
        .collect()
}

async fn events_tail_decodes_the_orders_events_with_their_trace(stack: &Stack, id: &str) -> Result<()> {
    let lines = tail(
        stack,
        &[
            "events",
            "tail",
            "orders",
            "--from-beginning",
            "--order",
            id,
            "--json",
        ],
    )
    .await?;
    ensure!(
        lines.iter().all(|l| l["envelope"]["order_id"] == id),
        "--order let other orders through: {lines:?}"
    );
    let placed = lines
        .iter()
        .find(|l| l["envelope"]["event_type"] == "OrderPlaced")
        .with_context(|| format!("no OrderPlaced of {id}: {lines:?}"))?;
    assert_eq!(placed["envelope"]["order_placed"]["order_id"], id, "{placed}");
    assert_eq!(placed["topic"], format!("{}orders.v1", stack.topic_prefix()));
    assert_eq!(placed["key"], id);
    let traceparent = placed["headers"]["traceparent"].as_str().unwrap_or_default();
    assert!(traceparent.starts_with("00-"), "no traceparent header: {placed}");

    // Several topics at once, filtered by type.
    let lines = tail(
        stack,
        &[
            "events",
            "tail",
            "orders",
            "payments",
            "warehouse",
            "--from-beginning",
            "--order",
            id,
            "--type",
            "OrderShipped",
        ],
    )
    .await?;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["topic"], format!("{}warehouse.v1", stack.topic_prefix()));
    Ok(())
}

/// `--follow` from a time before an order is placed prints its placement
/// as it comes, and `--limit` ends the tail there.
async fn events_tail_follows_new_records_from_a_time(stack: &Stack, c: &Client) -> Result<()> {
    let since = chrono::Utc::now().to_rfc3339();
    let args = [
        "events",
        "tail",
        "orders",
        "--follow",
        "--since",
        &since,
        "--type",
        "OrderPlaced",
        "--limit",
        "1",
    ];
    let cli = stack
        .omnisaga_command(
            &args,
            &stack.token("cli-operator", &omnisaga_e2e::OPERATOR_SCOPES),
        )?
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let id = c
        .place(&order_body("SKU-MUG", 1, "tok_visa", "cli-follow"))
        .await?;
    let out = tokio::time::timeout(WAIT, cli.wait_with_output())
        .await
        .context("the tail did not stop at its limit")??;
    ensure!(
        out.status.success(),
        "tail --follow failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(line["envelope"]["order_id"], id, "{line}");
    Ok(())
}

async fn events_tail_keeps_a_record_that_does_not_decode(stack: &Stack) -> Result<()> {
    let key = uuid::Uuid::new_v4().to_string();
    let topic = format!("{}orders.v1", stack.topic_prefix());
    omnisaga_e2e::produce_raw(
        &stack.kafka,
        &topic,
        &key,
        b"\x08\x96\x01 definitely not an envelope",
    )
    .await?;
    let lines = tail(
        stack,
        &["events", "tail", "orders", "--from-beginning", "--order", &key],
    )
    .await?;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not an omnisaga.v1.Envelope"),
        "{lines:?}"
    );
    assert!(lines[0]["value_base64"].is_string(), "{lines:?}");
    Ok(())
}

async fn topics_lists_every_catalog_topic_with_each_groups_lag(stack: &Stack) -> Result<()> {
    let prefix = stack.topic_prefix();
    let body = omnisaga_json(stack, &["topics", "--json"]).await?;
    let topics = body["topics"].as_array().context("no topics")?;
    let names: Vec<&str> = topics.iter().filter_map(|t| t["name"].as_str()).collect();
    let catalog_names: Vec<String> = catalog().topics().iter().map(|t| t.name(prefix)).collect();
    assert_eq!(names, catalog_names);
    for (topic, listed) in catalog().topics().iter().zip(topics) {
        assert_eq!(listed["owner"], topic.owner.as_str());
        assert_eq!(listed["dead_letter_topic"], topic.dead_letter_name(prefix));
        let consumers = listed["consumers"].as_array().context("no consumers")?;
        assert_eq!(consumers.len(), topic.consumers.len(), "{listed}");
        for (service, c) in topic.consumers.iter().zip(consumers) {
            assert_eq!(c["group"], format!("{prefix}{service}"), "{c}");
            assert!(c["lag"].as_i64().is_some_and(|l| l >= 0), "{c}");
            assert!(c["partitions"].as_array().is_some_and(|p| !p.is_empty()), "{c}");
        }
    }
    let table = stack.omnisaga(&["topics"]).await?;
    ensure!(
        table.status.success() && String::from_utf8_lossy(&table.stdout).contains("LAG"),
        "no table"
    );
    Ok(())
}

async fn order_timeline_shows_every_services_view(stack: &Stack, id: &str) -> Result<()> {
    let page = omnisaga_json(stack, &["order", "timeline", id, "--json"]).await?;
    assert_eq!(page["order"]["status"], "SHIPPED", "{page}");
    assert_eq!(page["payment"]["status"], "found", "{page}");
    assert_eq!(page["payment"]["view"]["status"], "AUTHORIZED", "{page}");
    assert_eq!(
        page["warehouse"]["view"]["pick_task"]["status"], "SHIPPED",
        "{page}"
    );
    assert_eq!(page["warehouse"]["view"]["stock"]["shipped"], true, "{page}");
    let messages = page["notification"]["view"]["items"]
        .as_array()
        .context("no messages")?;
    assert!(messages.iter().any(|m| m["template"] == "shipped"), "{page}");
    // Analytics follows the saga a little behind the order service.
    let stages = wait_for(
        "analytics to see the shipment",
        Duration::from_secs(30),
        || async {
            let page = omnisaga_json(stack, &["order", "timeline", id, "--json"]).await?;
            let stages: Vec<String> = page["analytics"]["view"]["stages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["stage"].as_str().map(str::to_owned))
                .collect();
            Ok(stages.iter().any(|s| s == "shipped").then_some(stages))
        },
    )
    .await?;
    assert_eq!(
        stages,
        ["placed", "paid", "ready_for_shipment", "shipped"],
        "{page}"
    );
    let trace = page["trace_url"].as_str().unwrap_or_default();
    assert!(
        trace.starts_with(&format!("{}/trace/", stack.traces_url)),
        "{page}"
    );

    let alias = stack.omnisaga(&["timeline", id]).await?;
    let text = String::from_utf8_lossy(&alias.stdout);
    ensure!(
        alias.status.success() && text.contains("SHIPPED") && text.contains("OrderPlaced"),
        "timeline said: {text}"
    );
    Ok(())
}

/// Parks a key at payment with a retry of an order it has not seen, lets
/// payment see the order (under another key, so not parked behind), and
/// replays the key through the CLI: the retry now applies.
async fn a_parked_key_is_replayed_through_the_cli(stack: &Stack) -> Result<()> {
    let topic = format!("{}orders.v1", stack.topic_prefix());
    let key = uuid::Uuid::new_v4().to_string();
    let retry = Payload::PaymentRetryRequested(PaymentRetryRequested {
        order_id: key.clone(),
        attempt: 2,
        payment_method_token: "tok_visa".into(),
    });
    omnisaga_e2e::produce_raw(&stack.kafka, &topic, &key, &envelope(&key, retry)).await?;
    wait_for("the retry to be parked at payment", WAIT, || async {
        let list = omnisaga_json(stack, &["dlq", "list", "payment", "--json"]).await?;
        Ok(list["parked_keys"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == key.as_str()))
            .then_some(()))
    })
    .await?;

    let placed = Payload::OrderPlaced(OrderPlaced {
        order_id: key.clone(),
        total: Some(Money {
            minor_units: 1200,
            currency: "EUR".into(),
        }),
        payment_method_token: "tok_visa".into(),
        ..Default::default()
    });
    omnisaga_e2e::produce_raw(
        &stack.kafka,
        &topic,
        &format!("{key}-placed"),
        &envelope(&key, placed),
    )
    .await?;
    let payment_url = format!("{}/v1/payments/{key}", stack.admin_url("payment"));
    let c = Client::new(stack);
    wait_for("payment to see the order", WAIT, || async {
        Ok(Some(c.get(&payment_url).await?))
    })
    .await?;

    let report = omnisaga_json(stack, &["dlq", "replay", "payment", &key]).await?;
    let report = &report["replays"][0]["report"];
    assert_eq!(
        (
            report["replayed"].as_i64(),
            report["remaining"].as_i64(),
            &report["error"]
        ),
        (Some(1), Some(0), &Value::Null),
        "{report}"
    );
    let list = omnisaga_json(stack, &["dlq", "list", "payment", "--key", &key, "--json"]).await?;
    assert_eq!(list["items"], serde_json::json!([]), "{list}");
    ensure!(
        !list["parked_keys"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|k| k == key.as_str()),
        "still parked: {list}"
    );
    Ok(())
}

/// `messages dead` asks the notification service, whose log channel takes
/// every message: none is dead.
async fn no_chat_message_is_dead_when_the_channel_takes_them(stack: &Stack) -> Result<()> {
    let dead = omnisaga_json(stack, &["messages", "dead", "--json"]).await?;
    ensure!(dead["items"] == serde_json::json!([]), "dead messages: {dead}");
    Ok(())
}

async fn what_the_cli_cannot_do_fails_with_a_clear_message(stack: &Stack) -> Result<()> {
    let unknown = uuid::Uuid::new_v4().to_string();
    let cases: [(&[&str], &str); 5] = [
        (&["order", "timeline", &unknown], "not found"),
        (&["order", "timeline", "not-an-order"], "order not-an-order"),
        (
            &["events", "tail", "no-such-topic", "--from-beginning"],
            "no topic",
        ),
        (&["dlq", "list", "billing"], "invalid value"),
        (&["messages", "retry", &unknown], "no such message"),
    ];
    for (args, message) in cases {
        let out = stack.omnisaga(args).await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(!out.status.success(), "omnisaga {args:?} succeeded");
        ensure!(
            stderr.contains(message),
            "omnisaga {args:?} said {stderr:?}, not {message:?}"
        );
    }
    Ok(())
}

fn envelope(order_id: &str, payload: Payload) -> Vec<u8> {
    let env = omnisaga_proto::v1::Envelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: payload.event_type().into(),
        order_id: order_id.into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp(),
            nanos: 0,
        }),
        schema_version: 1,
        producer: "order".into(),
        payload: Some(payload),
        ..Default::default()
    };
    prost::Message::encode_to_vec(&env)
}
