//! `POST /v1/admin/reconcile`: an order the order service says shipped is
//! a counterexample until its customer was sent the `shipped` message.

use std::time::Duration;

use chrono::Utc;
use omnisaga_runtime::testing;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

async fn reconcile(app: &TestApp, body: &Value) -> Value {
    let (status, body) = testing::openapi::reconcile("notification", &app.admin_url, body).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn a_shipped_order_is_a_counterexample_until_its_shipped_message_is_sent() {
    let app = spawn_app().await;
    let order_id = app.place_order("OS-100001", "cust-1").await;
    let window = || {
        json!({
            "since": (Utc::now() - chrono::Duration::hours(1)).to_rfc3339(),
            "until": Utc::now().to_rfc3339(),
            "shipped": [{"order_id": order_id, "total_minor": 100}],
        })
    };
    let untold = reconcile(&app, &window()).await;
    let found: Vec<(&str, &str)> = untold["counterexamples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["invariant"] == "shipped_told")
        .map(|c| (c["order_id"].as_str().unwrap(), c["detail"].as_str().unwrap()))
        .collect();
    assert_eq!(
        found,
        [(
            order_id.to_string().as_str(),
            "shipped, the customer was never told: no 'shipped' message"
        )]
    );

    app.ship_order(order_id).await;
    let told = testing::wait_for(
        "the shipped message to be sent",
        Duration::from_secs(30),
        || async {
            let report = reconcile(&app, &window()).await;
            (report["counterexamples"] == json!([])).then_some(report)
        },
    )
    .await
    .unwrap();
    assert_eq!(told["checked"]["shipped_told"], 1, "{told}");
}
