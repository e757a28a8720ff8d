//! `GET /v1/summary`: stage counts, fulfilment percentiles and the share of
//! successful payments.

use std::time::Duration;

use omnisaga_runtime::testing;
use serde_json::json;

use crate::helpers::{paid, spawn_app};

#[tokio::test]
async fn an_empty_summary_counts_nothing_and_times_nothing() {
    let app = spawn_app().await;
    let none = json!({"count": 0, "p50": null, "p95": null, "p99": null, "max": null});
    assert_eq!(
        app.summary().await,
        json!({
            "orders": {"placed": 0, "paid": 0, "ready_for_shipment": 0, "shipped": 0, "cancelled": 0},
            "payments": {"authorized": 0, "failed": 0, "success_share": null},
            "fulfilment_ms": {"placed_to_ready_for_shipment": none, "placed_to_shipped": none},
        })
    );
}

#[tokio::test]
async fn placed_orders_and_payment_answers_are_counted() {
    let app = spawn_app().await;
    let (paid, declined) = (app.place_order().await, app.place_order().await);
    app.pay(paid, true).await;
    app.pay(declined, false).await;

    let summary = testing::wait_for("four events to be counted", Duration::from_secs(30), || async {
        let s = app.summary().await;
        let counted =
            s["orders"]["placed"] == 2 && s["payments"]["authorized"] == 1 && s["payments"]["failed"] == 1;
        counted.then_some(s)
    })
    .await
    .unwrap();
    assert_eq!(
        summary["orders"],
        json!({"placed": 2, "paid": 1, "ready_for_shipment": 0, "shipped": 0, "cancelled": 0})
    );
    assert_eq!(summary["payments"]["success_share"], 0.5);
    assert_eq!(
        summary["fulfilment_ms"]["placed_to_shipped"]["count"], 0,
        "none shipped"
    );
}

#[tokio::test]
async fn a_payment_failure_delivered_twice_is_counted_once() {
    let app = spawn_app().await;
    let order_id = app.place_order().await;
    let payments = app.kafka.topics().payments;
    let declined = paid(order_id, false);
    app.publish(&payments, &declined).await;
    app.publish(&payments, &declined).await;
    // The retry's approval has the same key, so it follows the redelivery in
    // its partition: once it is counted, the duplicate has been handled.
    app.publish(&payments, &paid(order_id, true)).await;

    let summary = testing::wait_for("the approval to be counted", Duration::from_secs(30), || async {
        let s = app.summary().await;
        (s["payments"]["authorized"] == 1).then_some(s)
    })
    .await
    .unwrap();
    assert_eq!(summary["payments"]["failed"], 1, "{summary}");
    assert_eq!(summary["payments"]["success_share"], 0.5);
}
