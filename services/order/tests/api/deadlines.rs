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
