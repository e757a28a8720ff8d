//! The saga's deadlines, which the order service keeps by itself: an order
//! whose payment was declined and not retried is cancelled once its payment
//! deadline passes, and a customer whose order had no payment answer for the
//! notice period is told payment is delayed (once: the decider's tests).

use std::time::Duration;

use omnisaga_proto::v1::{envelope::Payload, PaymentFailed};
use omnisaga_runtime::testing;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{json_of, order_body, spawn_app_configured, TestApp};

async fn place(app: &TestApp) -> Uuid {
    let key = Uuid::new_v4().to_string();
    let resp = app.post_order(Some(&key), &order_body()).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    body["order_id"].as_str().unwrap().parse().unwrap()
}

async fn order(app: &TestApp, id: Uuid) -> Value {
    json_of(app.http.get(format!("{}/v1/orders/{id}", app.url))).await
}

fn types(order: &Value) -> Vec<String> {
    order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_declined_order_is_cancelled_at_its_deadline_and_a_waiting_customer_is_told_once() {
    let app = spawn_app_configured(|c| {
        c.payment_deadline = Duration::from_millis(500);
        c.payment_delay_notice = Duration::from_millis(300);
        c.deadline_tick = Duration::from_millis(50);
    })
    .await;
    let declined = place(&app).await;
    let failed = Payload::PaymentFailed(PaymentFailed {
        order_id: declined.to_string(),
        attempt: 1,
        reason: "card_declined".into(),
        retryable: true,
        ..Default::default()
    });
    app.publish_as("payment", &app.kafka.topics().payments, declined, failed)
        .await;
    let waiting = place(&app).await;

    let cancelled = testing::wait_for(
        "the declined order to be cancelled",
        Duration::from_secs(30),
        || async {
            let o = order(&app, declined).await;
            (o["status"] == "CANCELLED").then_some(o)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        types(&cancelled).last().map(String::as_str),
        Some("OrderCancelled")
    );
    let told = testing::wait_for(
        "the waiting customer to be told",
        Duration::from_secs(30),
        || async {
            let o = order(&app, waiting).await;
            types(&o).contains(&"PaymentDelayed".to_owned()).then_some(o)
        },
    )
    .await
    .unwrap();
    assert_eq!(told["status"], "PLACED", "{told}");
}

#[tokio::test]
async fn a_retry_asked_for_before_the_deadline_is_answered_before_the_order_is_cancelled() {
    let app = spawn_app_configured(|c| {
        c.payment_deadline = Duration::from_secs(5);
        c.deadline_tick = Duration::from_millis(50);
    })
    .await;
    let declined = |id: Uuid, attempt: u32| {
        Payload::PaymentFailed(PaymentFailed {
            order_id: id.to_string(),
            attempt,
            reason: "card_declined".into(),
            retryable: true,
            ..Default::default()
        })
    };
    let awaiting = |id: Uuid| {
        let app = &app;
        async move {
            testing::wait_for("the order to await payment", Duration::from_secs(30), || async {
                (order(app, id).await["status"] == "AWAITING_PAYMENT").then_some(())
            })
            .await
            .unwrap();
        }
    };
    let payments = app.kafka.topics().payments.clone();
    // The retried order's deadline falls first; the other's comes after it.
    let retried = place(&app).await;
    app.publish_as("payment", &payments, retried, declined(retried, 1))
        .await;
    awaiting(retried).await;
    let retry = app
        .http
        .post(format!("{}/v1/orders/{retried}/payment-retry", app.url))
        .header("Idempotency-Key", "k-retry-in-time")
        .json(&serde_json::json!({"payment_method": "tok_visa"}))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 202, "asked for before the deadline");
    let later = place(&app).await;
    app.publish_as("payment", &payments, later, declined(later, 1))
        .await;
    awaiting(later).await;

    // The later order's cancellation means the checker has passed the
    // retried order's deadline too, and left it to the retry's answer.
    testing::wait_for("the later order cancelled", Duration::from_secs(30), || async {
        (order(&app, later).await["status"] == "CANCELLED").then_some(())
    })
    .await
    .unwrap();
    let spared = order(&app, retried).await;
    assert_eq!(spared["status"], "AWAITING_PAYMENT", "{spared}");
    assert!(!types(&spared).contains(&"OrderCancelled".to_owned()), "{spared}");
    // What the app shows meanwhile: the decline, that another card may
    // help, the retry in flight, and until when one is taken.
    testing::openapi::check_response("order", "get", "/v1/orders/{id}", 200, &spared).unwrap();
    let payment = &spared["payment"];
    assert_eq!(
        (
            &payment["attempts"],
            &payment["retry_pending"],
            &spared["cancel_reason"]
        ),
        (&Value::from(2), &Value::from(true), &Value::Null),
        "{spared}"
    );
    assert_eq!(payment["last_failure"]["attempt"], 1, "{spared}");
    assert_eq!(payment["last_failure"]["reason"], "card_declined", "{spared}");
    assert_eq!(payment["last_failure"]["retryable"], true, "{spared}");
    assert!(payment["retry_by"].is_string(), "{spared}");

    // Declined again after its deadline: now it is cancelled.
    app.publish_as("payment", &payments, retried, declined(retried, 2))
        .await;
    let cancelled = testing::wait_for(
        "the retried order cancelled once its retry was declined",
        Duration::from_secs(30),
        || async {
            let o = order(&app, retried).await;
            (o["status"] == "CANCELLED").then_some(o)
        },
    )
    .await
    .unwrap();
    let tail: Vec<String> = types(&cancelled).into_iter().rev().take(2).collect();
    assert_eq!(tail, ["OrderCancelled", "PaymentFailed"], "{cancelled}");
    assert_eq!(
        cancelled["cancel_reason"], "payment_deadline_passed",
        "{cancelled}"
    );
    let payment = &cancelled["payment"];
    assert_eq!(payment["last_failure"]["attempt"], 2, "{cancelled}");
    assert_eq!(
        payment["retry_by"],
        Value::Null,
        "no retry is taken any more: {cancelled}"
    );
    assert_eq!(payment["retry_pending"], false, "{cancelled}");
}
