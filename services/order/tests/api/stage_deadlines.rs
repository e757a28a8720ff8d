//! Every waiting stage's deadline: an order left in `PLACED` (no payment
//! answer), `PAID` (not packed) or `READY_FOR_SHIPMENT` (not shipped) past
//! its stage's limit is escalated once in that stage (`OrderEscalated`, the
//! customer told through notification, the order listed escalated to
//! operators), never cancelled, and moves on when the news comes. News
//! recorded before the deadline leaves nothing to escalate.

use std::time::Duration;

use omnisaga_order::config::StageDeadlines;
use omnisaga_proto::{
    v1::{envelope::Payload, OrderReadyForShipment, PaymentAuthorized},
    v2::OrderShipped,
};
use omnisaga_runtime::testing;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{json_of, order_body, spawn_app_configured, TestApp};

const WAIT: Duration = Duration::from_secs(30);

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

fn escalations(order: &Value) -> usize {
    order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "OrderEscalated")
        .count()
}

/// Waits until `id` is `status` and escalated there, its `n`-th escalation.
async fn wait_escalated(app: &TestApp, id: Uuid, status: &str, n: usize) -> Value {
    testing::wait_for(&format!("{id} escalated in {status}"), WAIT, || async {
        let o = order(app, id).await;
        (o["status"] == status && o["escalated"] == true && escalations(&o) == n).then_some(o)
    })
    .await
    .unwrap()
}

async fn publish(app: &TestApp, producer: &str, id: Uuid, payload: Payload) {
    let topics = app.kafka.topics();
    let topic = if producer == "payment" {
        &topics.payments
    } else {
        &topics.warehouse
    };
    app.publish_as(producer, topic, id, payload).await;
}

/// The ids `GET /v1/admin/orders?escalated=true` lists (checked against the document).
async fn listed_escalated(app: &TestApp) -> Vec<Value> {
    let admin = app.as_caller(&testing::auth::admin_token());
    let body = json_of(admin.get(format!("{}/v1/admin/orders?escalated=true", app.admin_url))).await;
    testing::openapi::check_response("order", "get", "/v1/admin/orders", 200, &body).unwrap();
    body["items"].as_array().unwrap().clone()
}

fn short_deadlines(c: &mut omnisaga_order::config::Config) {
    c.stage_deadlines = StageDeadlines {
        placed: Duration::from_millis(400),
        paid: Duration::from_millis(400),
        ready_for_shipment: Duration::from_millis(400),
    };
    c.payment_delay_notice = Duration::from_secs(3600);
    c.deadline_tick = Duration::from_millis(50);
}

#[tokio::test]
async fn an_order_left_in_each_waiting_stage_is_escalated_once_there_and_goes_on_when_the_news_comes() {
    let app = spawn_app_configured(short_deadlines).await;
    let id = place(&app).await;

    let o = wait_escalated(&app, id, "PLACED", 1).await;
    testing::openapi::check_response("order", "get", "/v1/orders/{id}", 200, &o).unwrap();
    let listed = listed_escalated(&app).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (&listed[0]["order_id"], &listed[0]["escalated"]),
        (&id.to_string().into(), &true.into())
    );
    let kinds: Vec<&Value> = listed[0]["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["kind"])
        .collect();
    assert!(
        !kinds.contains(&&"escalation".into()),
        "escalated: no escalation ahead: {kinds:?}"
    );
    // Told once: a second order placed now is escalated after many more
    // looks at the first, which still has its one escalation.
    let later = place(&app).await;
    wait_escalated(&app, later, "PLACED", 1).await;
    assert_eq!(escalations(&order(&app, id).await), 1);

    // The payment answer still moves it on; PAID has a deadline of its own.
    let paid = Payload::PaymentAuthorized(PaymentAuthorized {
        order_id: id.to_string(),
        attempt: 1,
        ..Default::default()
    });
    publish(&app, "payment", id, paid).await;
    wait_escalated(&app, id, "PAID", 2).await;
    let ready = Payload::OrderReadyForShipment(OrderReadyForShipment {
        order_id: id.to_string(),
        ..Default::default()
    });
    publish(&app, "warehouse", id, ready).await;
    let o = wait_escalated(&app, id, "READY_FOR_SHIPMENT", 3).await;
    let stages: Vec<&str> = o["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "OrderPlaced",
            "OrderEscalated",
            "PaymentAuthorized",
            "OrderEscalated",
            "OrderReadyForShipment",
            "OrderEscalated"
        ]
    );
    let shipped = Payload::OrderShippedV2(OrderShipped {
        order_id: id.to_string(),
        ..Default::default()
    });
    publish(&app, "warehouse", id, shipped).await;
    let o = testing::wait_for("the order to ship", WAIT, || async {
        let o = order(&app, id).await;
        (o["status"] == "SHIPPED").then_some(o)
    })
    .await
    .unwrap();
    assert_eq!((o["escalated"].clone(), escalations(&o)), (false.into(), 3));
    let listed = listed_escalated(&app).await;
    assert!(
        listed.iter().all(|o| o["order_id"] != id.to_string().as_str()),
        "{listed:?}"
    );
}

#[tokio::test]
async fn news_recorded_before_the_deadline_leaves_nothing_to_escalate() {
    let app = spawn_app_configured(|c| {
        short_deadlines(c);
        c.stage_deadlines.placed = Duration::from_secs(5);
        c.stage_deadlines.paid = Duration::from_secs(3600);
    })
    .await;
    let answered = place(&app).await;
    let waiting = place(&app).await;
    let paid = Payload::PaymentAuthorized(PaymentAuthorized {
        order_id: answered.to_string(),
        attempt: 1,
        ..Default::default()
    });
    publish(&app, "payment", answered, paid).await;
    testing::wait_for("the answer to be recorded", WAIT, || async {
        (order(&app, answered).await["status"] == "PAID").then_some(())
    })
    .await
    .unwrap();
    // Placed together: once the waiting one is escalated, the answered
    // one's PLACED deadline passed too.
    wait_escalated(&app, waiting, "PLACED", 1).await;
    let o = order(&app, answered).await;
    assert_eq!(
        (&o["status"], &o["escalated"], escalations(&o)),
        (&"PAID".into(), &false.into(), 0),
        "{o}"
    );
}
