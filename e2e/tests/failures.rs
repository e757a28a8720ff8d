//! The saga's failure paths against the stack as real processes: declines
//! and retries, provider outage, payment deadline, unavailable stock,
//! customer cancel, the payment service down, and the warehouse killed in
//! the middle of a backlog. Each compensation must show as an event.

use std::time::Duration;

use anyhow::{ensure, Result};
use omnisaga_auth::Scope;
use omnisaga_e2e::{
    client::{order_body, wait_for, Client},
    Stack, StackOptions,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

async fn start_stack() -> Result<Stack> {
    let options = StackOptions::for_test()
        .set_env("order", "ORDER_PAYMENT_DEADLINE_MS", "3000")
        .set_env("order", "ORDER_PAYMENT_DELAY_NOTICE_MS", "1500")
        .set_env("order", "ORDER_DEADLINE_TICK_MS", "100")
        .set_env("order", "ORDER_STUCK_AFTER_MS", "1000")
        .set_env("warehouse", "WAREHOUSE_PICKERS", "2")
        .warehouse_ms(100, 0, 20);
    Stack::start(options).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_path_ends_in_a_consistent_state() -> Result<()> {
    let mut stack = start_stack().await?;
    let result = run(&mut stack).await;
    stack.finish(result.is_ok()).await?;
    result
}

async fn run(stack: &mut Stack) -> Result<()> {
    let c = Client::new(stack);
    let (a, b, cc, d, e, f) = tokio::join!(
        declined_payment_is_retried_and_completes(&c),
        payment_deadline_cancels_and_releases_stock(&c),
        unavailable_stock_cancels_and_voids_the_payment(&c),
        customer_cancel_before_shipment_compensates(&c),
        cancel_after_shipment_is_refused(&c),
        cancelling_paid_orders_never_ships_unpaid_goods_or_holds_money(&c),
    );
    a?;
    b?;
    cc?;
    d?;
    e?;
    f?;
    poison_messages_are_dead_lettered_and_the_consumers_go_on(stack, &c).await?;
    provider_outage_takes_the_retry_path(&c).await?;
    orders_survive_the_payment_service_being_down(stack, &c).await?;
    killing_the_warehouse_mid_backlog_loses_nothing(stack, &c).await?;
    replaying_every_topic_changes_nothing(stack, &c).await?;
    Ok(())
}

async fn declined_payment_is_retried_and_completes(c: &Client) -> Result<()> {
    let id = c
        .place(&order_body("SKU-MUG", 1, "tok_decline", "decline"))
        .await?;
    c.wait_status(&id, "AWAITING_PAYMENT", WAIT).await?;
    c.wait_message(&id, "payment_failed", WAIT).await?;

    let url = format!("{}/v1/orders/{id}/payment-retry", c.order);
    let body = json!({"payment_method": "tok_visa"});
    // A double tap: the same retry five times at once makes one attempt and one answer.
    let answers = futures::future::try_join_all(
        (0..5).map(|_| c.send(reqwest::Method::POST, &url, Some("retry-1"), &body)),
    )
    .await?;
    let (status, first) = answers[0].clone();
    ensure!(status == 202, "retry answered {status}: {first}");
    assert_eq!(first["attempt"], 2);
    for answer in &answers {
        assert_eq!(answer, &(202, first.clone()), "concurrent retries answer alike");
    }
    let (status, again) = c
        .send(reqwest::Method::POST, &url, Some("retry-1"), &body)
        .await?;
    assert_eq!(
        (status, &again),
        (202, &first),
        "a repeated retry request answers the same"
    );

    c.wait_status(&id, "SHIPPED", WAIT).await?;
    let timeline = c.timeline(&id).await?;
    let count = |t: &str| timeline.iter().filter(|e| *e == t).count();
    assert_eq!(
        (
            count("PaymentFailed"),
            count("PaymentRetryRequested"),
            count("PaymentAuthorized")
        ),
        (1, 1, 1),
        "{timeline:?}"
    );
    let payment = c.get(&format!("{}/v1/payments/{id}", c.payment_admin)).await?;
    assert_eq!(
        (payment["status"].as_str(), payment["attempts"].as_i64()),
        (Some("AUTHORIZED"), Some(2))
    );

    let (status, late) = c
        .send(reqwest::Method::POST, &url, Some("retry-2"), &body)
        .await?;
    assert_eq!(
        (status, late["code"].as_str()),
        (409, Some("payment_retry_not_allowed"))
    );
    Ok(())
}

async fn payment_deadline_cancels_and_releases_stock(c: &Client) -> Result<()> {
    let id = c
        .place(&order_body("SKU-LAMP", 2, "tok_insufficient_funds", "deadline"))
        .await?;
    c.wait_status(&id, "AWAITING_PAYMENT", WAIT).await?;
    let order = c.wait_status(&id, "CANCELLED", WAIT).await?;
    let timeline = c.wait_event(&id, "StockReleased", WAIT).await?;
    assert!(timeline.contains(&"OrderCancelled".to_owned()), "{order}");
    c.wait_message(&id, "order_cancelled", WAIT).await?;
    Ok(())
}

/// An order whose stock is not there is cancelled and keeps no money: the
/// provider's answer either came first and was voided, or never came (the
/// provider caller saw that nothing ships before it asked).
async fn unavailable_stock_cancels_and_voids_the_payment(c: &Client) -> Result<()> {
    let (on_hand, _) = c.stock("SKU-RARE").await?;
    let id = c
        .place(&order_body("SKU-RARE", (on_hand + 1) as u32, "tok_visa", "rare"))
        .await?;
    c.wait_status(&id, "CANCELLED", WAIT).await?;
    let url = format!("{}/v1/payments/{id}", c.payment_admin);
    let status = wait_for("the payment to settle", WAIT, || async {
        let payment = c.get(&url).await?;
        Ok(match payment["status"].as_str() {
            Some(s @ ("VOIDED" | "CANCELLED")) => Some(s.to_owned()),
            _ => None,
        })
    })
    .await?;
    let timeline = match status.as_str() {
        "VOIDED" => c.wait_event(&id, "PaymentVoided", WAIT).await?,
        _ => c.timeline(&id).await?,
    };
    for step in ["StockUnavailable", "OrderCancelled"] {
        assert!(
            timeline.iter().any(|e| e == step),
            "{step} missing from {timeline:?}"
        );
    }
    let authorized = timeline.iter().any(|e| e == "PaymentAuthorized");
    let voided = timeline.iter().any(|e| e == "PaymentVoided");
    assert!(
        matches!(
            (status.as_str(), authorized, voided),
            ("VOIDED", true, true) | ("CANCELLED", false, false)
        ),
        "an approval stands for an order that ships nothing: payment {status}, {timeline:?}"
    );
    assert!(!timeline.iter().any(|e| e == "StockReserved"), "{timeline:?}");
    assert_eq!(c.stock("SKU-RARE").await?, (on_hand, 0), "nothing reserved");
    Ok(())
}

async fn customer_cancel_before_shipment_compensates(c: &Client) -> Result<()> {
    let id = c
        .place(&order_body("SKU-BOTTLE", 3, "tok_decline", "cancel"))
        .await?;
    c.wait_status(&id, "AWAITING_PAYMENT", WAIT).await?;
    c.wait_event(&id, "StockReserved", WAIT).await?;
    let url = format!("{}/v1/orders/{id}/cancel", c.order);
    let (status, body) = c.send(reqwest::Method::POST, &url, None, &json!({})).await?;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("CANCELLED")),
        "{body}"
    );
    let (status, again) = c.send(reqwest::Method::POST, &url, None, &json!({})).await?;
    assert_eq!((status, again), (200, body), "cancelling twice answers the same");
    c.wait_event(&id, "StockReleased", WAIT).await?;
    c.wait_message(&id, "order_cancelled", WAIT).await?;
    Ok(())
}

/// Paid orders cancelled while the warehouse picks them: each ends either
/// cancelled with its stock back and its authorisation voided, or (if the
/// parcel left first) shipped and still paid; never shipped unpaid, never
/// cancelled with the money held.
async fn cancelling_paid_orders_never_ships_unpaid_goods_or_holds_money(c: &Client) -> Result<()> {
    const SKU: &str = "SKU-HOODIE-L";
    let (on_hand_before, _) = c.stock(SKU).await?;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            c.place(&order_body(SKU, 1, "tok_visa", &format!("paid-cancel-{i}")))
                .await?,
        );
    }
    for id in &ids {
        c.wait_event(id, "PaymentAuthorized", WAIT).await?;
        let url = format!("{}/v1/orders/{id}/cancel", c.order);
        let (status, body) = c.send(reqwest::Method::POST, &url, None, &json!({})).await?;
        ensure!(
            status == 200 || body["code"] == "order_not_cancellable",
            "cancel answered {status}: {body}"
        );
    }
    let mut shipped = 0;
    for id in &ids {
        let payment_url = format!("{}/v1/payments/{id}", c.payment_admin);
        let status = wait_for(&format!("order {id} to settle"), WAIT, || async {
            let order = c.order(id).await?;
            let payment = c.get(&payment_url).await?;
            let settled = matches!(
                (order["status"].as_str(), payment["status"].as_str()),
                (Some("CANCELLED"), Some("VOIDED")) | (Some("SHIPPED"), Some("AUTHORIZED"))
            );
            Ok(settled.then(|| order["status"].clone()))
        })
        .await?;
        let timeline = c.timeline(id).await?;
        if status == "SHIPPED" {
            shipped += 1;
            ensure!(
                !timeline.iter().any(|e| e == "PaymentVoided"),
                "{id}: shipped and voided: {timeline:?}"
            );
        } else {
            // Payment voided on the warehouse's StockReleased; the order records it on its own time.
            let timeline = c.wait_event(id, "StockReleased", WAIT).await?;
            ensure!(
                !timeline.iter().any(|e| e == "OrderShipped"),
                "{id}: cancelled and shipped: {timeline:?}"
            );
            // Once told of the cancellation, the customer hears no stale "paid" or "packed".
            let messages = c.wait_message(id, "order_cancelled", WAIT).await?;
            let told = messages.iter().position(|m| m == "order_cancelled").unwrap_or(0);
            let stale = ["payment_confirmed", "ready_for_shipment"];
            ensure!(
                !messages[told..].iter().any(|m| stale.contains(&m.as_str())),
                "{id}: stale news after the cancellation: {messages:?}"
            );
        }
    }
    // Stock is conserved: what shipped left the shelf, the rest came back.
    wait_for("the hoodies' stock to settle", WAIT, || async {
        let (on_hand, reserved) = c.stock(SKU).await?;
        Ok((on_hand == on_hand_before - shipped && reserved == 0).then_some(()))
    })
    .await?;
    Ok(())
}

async fn cancel_after_shipment_is_refused(c: &Client) -> Result<()> {
    let id = c
        .place(&order_body("SKU-MUG", 1, "tok_visa", "late-cancel"))
        .await?;
    c.wait_status(&id, "SHIPPED", WAIT).await?;
    let (status, body) = c
        .send(
            reqwest::Method::POST,
            &format!("{}/v1/orders/{id}/cancel", c.order),
            None,
            &json!({}),
        )
        .await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("order_not_cancellable")),
        "{body}"
    );
    assert_eq!(c.order(&id).await?["status"], "SHIPPED");
    Ok(())
}

async fn provider_outage_takes_the_retry_path(c: &Client) -> Result<()> {
    c.set_provider_outage(true).await?;
    let id = c.place(&order_body("SKU-MUG", 1, "tok_visa", "outage")).await?;
    c.wait_status(&id, "AWAITING_PAYMENT", WAIT).await?;
    c.set_provider_outage(false).await?;
    let url = format!("{}/v1/orders/{id}/payment-retry", c.order);
    let (status, _) = c
        .send(
            reqwest::Method::POST,
            &url,
            Some("r"),
            &json!({"payment_method": "tok_visa"}),
        )
        .await?;
    assert_eq!(status, 202);
    c.wait_status(&id, "SHIPPED", WAIT).await?;
    Ok(())
}

async fn orders_survive_the_payment_service_being_down(stack: &mut Stack, c: &Client) -> Result<()> {
    stack.stop_service("payment").await?;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            c.place(&order_body("SKU-TSHIRT-M", 1, "tok_visa", &format!("down-{i}")))
                .await?,
        );
    }
    for id in &ids {
        c.wait_message(id, "payment_delayed", WAIT).await?;
        assert_eq!(
            c.order(id).await?["status"],
            "PLACED",
            "kept, not cancelled, while payment is down"
        );
    }
    // Unchanged past ORDER_STUCK_AFTER_MS (1 s here): counted as stuck.
    wait_for("the five orders counted stuck in PLACED", WAIT, || async {
        Ok((stuck(c, "PLACED").await? >= 5).then_some(()))
    })
    .await?;
    stack.start_service("payment").await?;
    for id in &ids {
        c.wait_status(id, "SHIPPED", WAIT).await?;
    }
    wait_for("no order stuck in PLACED once payment is back", WAIT, || async {
        Ok((stuck(c, "PLACED").await? == 0).then_some(()))
    })
    .await?;
    Ok(())
}

/// The order service's `omnisaga_sagas_stuck{status}` as it scrapes it now.
async fn stuck(c: &Client, status: &str) -> Result<i64> {
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
        .filter(|l| l.starts_with("omnisaga_sagas_stuck{") && l.contains(&label))
        .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map_or(-1, |v| v as i64))
}

async fn killing_the_warehouse_mid_backlog_loses_nothing(stack: &mut Stack, c: &Client) -> Result<()> {
    let (on_hand_before, _) = c.stock("SKU-HOODIE-L").await?;
    let mut ids = Vec::new();
    for i in 0..16 {
        ids.push(
            c.place(&order_body("SKU-HOODIE-L", 1, "tok_visa", &format!("burst-{i}")))
                .await?,
        );
    }
    let backlog_url = format!("{}/v1/pick-tasks/backlog", c.warehouse_admin);
    let backlog = wait_for("a pick backlog", WAIT, || async {
        let b = c.get(&backlog_url).await?;
        Ok((b["by_status"]["READY"].as_i64().unwrap_or(0) >= 4).then_some(b))
    })
    .await?;
    eprintln!("killing the warehouse with backlog {backlog}");
    stack.kill_service("warehouse").await?;
    stack.start_service("warehouse").await?;
    for id in &ids {
        c.wait_status(id, "SHIPPED", WAIT).await?;
        let timeline = c.timeline(id).await?;
        let count = |t: &str| timeline.iter().filter(|e| *e == t).count();
        assert_eq!(
            (count("OrderReadyForShipment"), count("OrderShipped")),
            (1, 1),
            "{id}: {timeline:?}"
        );
    }
    let (on_hand_after, reserved_after) = c.stock("SKU-HOODIE-L").await?;
    assert_eq!(
        on_hand_before - on_hand_after,
        ids.len() as i64,
        "stock shipped once per order"
    );
    assert_eq!(reserved_after, 0);
    let b = c.get(&backlog_url).await?;
    assert_eq!(b["total"], 0);
    Ok(())
}

fn envelope(
    order_id: &str,
    payload: Option<omnisaga_proto::v1::envelope::Payload>,
    event_type: &str,
) -> Vec<u8> {
    let env = omnisaga_proto::v1::Envelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: event_type.into(),
        order_id: order_id.into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp(),
            nanos: 0,
        }),
        schema_version: 1,
        producer: "intruder".into(),
        payload,
        ..Default::default()
    };
    prost::Message::encode_to_vec(&env)
}

async fn poison_messages_are_dead_lettered_and_the_consumers_go_on(stack: &Stack, c: &Client) -> Result<()> {
    use omnisaga_proto::v1::{envelope::Payload, OrderPlaced};
    let topic = &format!("{}orders.v1", stack.topic_prefix());
    let (bad_bytes, unknown, broken, invalid) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    omnisaga_e2e::produce_raw(
        &stack.kafka,
        topic,
        &bad_bytes,
        b"\x08\x96\x01 definitely not an envelope",
    )
    .await?;
    // A type this build does not know (a newer producer's): skipped, not a
    // dead letter (tolerant reader). A known type without its payload is
    // broken: a dead letter.
    omnisaga_e2e::produce_raw(
        &stack.kafka,
        topic,
        &unknown,
        &envelope(&unknown, None, "OrderTeleported"),
    )
    .await?;
    omnisaga_e2e::produce_raw(
        &stack.kafka,
        topic,
        &broken,
        &envelope(&broken, None, "OrderPlaced"),
    )
    .await?;
    // A valid envelope whose content is invalid: an OrderPlaced without a total.
    let no_total = Payload::OrderPlaced(OrderPlaced {
        order_id: invalid.clone(),
        ..Default::default()
    });
    omnisaga_e2e::produce_raw(
        &stack.kafka,
        topic,
        &invalid,
        &envelope(&invalid, Some(no_total), "OrderPlaced"),
    )
    .await?;

    let list_url = format!("{}/v1/admin/dead-letters", c.payment_admin);
    let letters = wait_for("three dead letters at payment", WAIT, || async {
        let body = c.get(&list_url).await?;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        Ok((items.len() >= 3).then_some(items))
    })
    .await?;
    let error_of = |key: &str| {
        letters
            .iter()
            .find(|d| d["key"] == key)
            .and_then(|d| d["error"].as_str())
            .unwrap_or("")
            .to_owned()
    };
    assert!(error_of(&bad_bytes).contains("undecodable"), "{letters:?}");
    assert!(error_of(&broken).contains("without its payload"), "{letters:?}");
    assert!(error_of(&invalid).contains("no total"), "{letters:?}");
    wait_for("payment to count the unknown event type", WAIT, || async {
        let text = c
            .http
            .get(format!("{}/metrics", c.payment))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .any(|l| {
                l.starts_with("omnisaga_consumer_unknown_events_total{")
                    && l.contains("event_type=\"OrderTeleported\"")
                    && l.ends_with(" 1")
            })
            .then_some(()))
    })
    .await?;
    assert!(
        error_of(&unknown).is_empty(),
        "an unknown event type was dead-lettered: {letters:?}"
    );

    // Other orders are unaffected.
    let id = c
        .place(&order_body("SKU-MUG", 1, "tok_visa", "after-poison"))
        .await?;
    c.wait_status(&id, "SHIPPED", WAIT).await?;

    // The CLI lists and shows them.
    let cli = omnisaga_e2e::bin_dir()?.join("omnisaga");
    let token = stack.token("cli-operator", &[Scope::Admin]);
    let out = tokio::process::Command::new(&cli)
        .args(["dlq", "list", "payment"])
        .env("PAYMENT_URL", &c.payment)
        .env("PAYMENT_ADMIN_URL", &c.payment_admin)
        .env("OMNISAGA_TOKEN", &token)
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && text.contains(&bad_bytes) && text.contains("undecodable"),
        "CLI said: {text}"
    );
    let first = letters[0]["id"].to_string();
    let out = tokio::process::Command::new(&cli)
        .args(["dlq", "show", "payment", &first])
        .env("PAYMENT_URL", &c.payment)
        .env("PAYMENT_ADMIN_URL", &c.payment_admin)
        .env("OMNISAGA_TOKEN", &token)
        .output()
        .await?;
    ensure!(
        String::from_utf8_lossy(&out.stdout).contains("dlq.source.offset"),
        "show lacks headers"
    );

    // Replaying a letter that still cannot be applied keeps it, parked.
    let out = tokio::process::Command::new(&cli)
        .args(["dlq", "replay", "payment", &broken])
        .env("PAYMENT_URL", &c.payment)
        .env("PAYMENT_ADMIN_URL", &c.payment_admin)
        .env("OMNISAGA_TOKEN", &token)
        .output()
        .await?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let report = &report["replays"][0]["report"];
    assert_eq!(
        (report["replayed"].as_i64(), report["remaining"].as_i64()),
        (Some(0), Some(1)),
        "{report}"
    );
    assert!(
        report["error"]
            .as_str()
            .unwrap_or("")
            .contains("without its payload"),
        "{report}"
    );
    Ok(())
}

/// Waits until `service`'s consumer has read every partition to its end
/// (in a group ending with `suffix`).
async fn caught_up(stack: &Stack, c: &Client, service: &str, suffix: &str) -> Result<()> {
    let url = format!("{}/v1/admin/consumers", stack.admin_url(service));
    wait_for(
        &format!("{service} to read every topic to its end"),
        WAIT,
        || async {
            let body = c.get(&url).await?;
            let consumer = &body["consumers"][0];
            let parts = consumer["partitions"].as_array().cloned().unwrap_or_default();
            let read_all =
                !parts.is_empty() && parts.iter().all(|p| p["lag"] == 0 && !p["position"].is_null());
            Ok((read_all && consumer["group"].as_str().is_some_and(|g| g.ends_with(suffix))).then_some(()))
        },
    )
    .await
}

const CONSUMERS: [&str; 5] = ["payment", "warehouse", "notification", "analytics", "order"];

/// Restarts the consumers under new consumer groups, so they re-read every
/// topic from the start, and checks that nothing changed: no second charge,
/// reservation, message, analytics count or timeline entry.
async fn replaying_every_topic_changes_nothing(stack: &mut Stack, c: &Client) -> Result<()> {
    let id = c.place(&order_body("SKU-MUG", 2, "tok_visa", "replay")).await?;
    c.wait_status(&id, "SHIPPED", WAIT).await?;
    c.wait_message(&id, "shipped", WAIT).await?;
    for service in CONSUMERS {
        caught_up(stack, c, service, "").await?;
    }
    let summary_url = format!("{}/v1/summary", c.analytics);
    let letters_url = format!("{}/v1/admin/dead-letters", c.payment_admin);
    let before = (
        c.get(&summary_url).await?,
        c.messages(&id).await?,
        c.stock("SKU-MUG").await?,
        c.timeline(&id).await?,
        c.get(&letters_url).await?["items"].clone(),
    );

    for service in CONSUMERS {
        stack.stop_service(service).await?;
        stack.set_service_env(service, "KAFKA_GROUP_SUFFIX", "-replay");
        stack.start_service(service).await?;
    }
    for service in CONSUMERS {
        caught_up(stack, c, service, "-replay").await?;
    }
    let after = (
        c.get(&summary_url).await?,
        c.messages(&id).await?,
        c.stock("SKU-MUG").await?,
        c.timeline(&id).await?,
        c.get(&letters_url).await?["items"].clone(),
    );
    assert_eq!(after.0, before.0, "analytics counted a replayed event");
    assert_eq!(after.1, before.1, "a message was sent twice");
    assert_eq!(after.2, before.2, "stock moved on a replay");
    assert_eq!(after.3, before.3, "the order recorded an event twice");
    assert_eq!(after.4, before.4, "a poison record was parked twice");
    let payment = c.get(&format!("{}/v1/payments/{id}", c.payment_admin)).await?;
    assert_eq!(payment["attempts"], 1, "charged again");
    Ok(())
}
