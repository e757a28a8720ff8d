//! `GET /v1/summary`: stage counts, fulfilment percentiles and the share of
//! successful payments.

use std::time::Duration;

use omnisaga_runtime::testing;
use serde_json::json;

use omnisaga_proto::v1::Channel;

use crate::helpers::{paid, placed_through, spawn_app};

#[tokio::test]
async fn an_empty_summary_counts_nothing_and_times_nothing() {
    let app = spawn_app().await;
    let none = json!({"count": 0, "p50": null, "p95": null, "p99": null, "max": null});
    assert_eq!(
        app.summary().await,
        json!({
            "orders": {"placed": 0, "paid": 0, "ready_for_shipment": 0, "shipped": 0, "cancelled": 0},
            "payments": {
                "authorized": 0, "failed": 0, "success_share": null,
                "orders_authorized": 0, "orders_declined": 0, "orders_voided": 0,
            },
            "fulfilment_ms": {"placed_to_ready_for_shipment": none, "placed_to_shipped": none},
            "channels": [],
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
        (s["payments"]["orders_authorized"] == 1).then_some(s)
    })
    .await
    .unwrap();
    assert_eq!(summary["payments"]["failed"], 1, "{summary}");
    // One order, declined and then paid: a success.
    assert_eq!(summary["payments"]["orders_authorized"], 1, "{summary}");
    assert_eq!(summary["payments"]["orders_declined"], 0, "{summary}");
    assert_eq!(summary["payments"]["success_share"], 1.0);
}

#[tokio::test]
async fn the_summary_breaks_orders_and_payments_down_by_channel() {
    let app = spawn_app().await;
    let orders = app.kafka.topics().orders;
    let mut mobile = Vec::new();
    for _ in 0..2 {
        let order_id = uuid::Uuid::new_v4();
        app.publish(
            &orders,
            &placed_through(order_id, Channel::Mobile, &[("SKU-TEA", 1, 450)]),
        )
        .await;
        mobile.push(order_id);
    }
    let web = uuid::Uuid::new_v4();
    app.publish(
        &orders,
        &placed_through(web, Channel::Web, &[("SKU-CUP", 1, 1200)]),
    )
    .await;
    app.pay(mobile[0], true).await;
    app.pay(mobile[1], false).await;
    app.pay(web, true).await;

    let summary = testing::wait_for("six events to be counted", Duration::from_secs(30), || async {
        let s = app.summary().await;
        let counted = s["orders"]["placed"] == 3
            && s["payments"]["orders_authorized"] == 2
            && s["payments"]["orders_declined"] == 1;
        counted.then_some(s)
    })
    .await
    .unwrap();
    let channel = |name: &str| {
        summary["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["channel"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {summary}"))
    };
    let (m, w) = (channel("mobile"), channel("web"));
    assert_eq!(summary["channels"].as_array().unwrap().len(), 2, "{summary}");
    assert_eq!(m["orders"]["placed"], 2);
    assert_eq!(m["orders"]["paid"], 1);
    assert_eq!(m["payments"]["success_share"], 0.5);
    assert_eq!(w["orders"]["placed"], 1);
    assert_eq!(w["payments"]["success_share"], 1.0);
    assert_eq!(w["fulfilment_ms"]["placed_to_shipped"]["count"], 0);
    let share = summary["payments"]["success_share"].as_f64().unwrap();
    assert!((share - 2.0 / 3.0).abs() < 1e-9, "{summary}");
}
