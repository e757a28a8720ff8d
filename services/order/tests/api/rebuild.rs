//! The order view rebuilt from the order streams through
//! `/v1/admin/rebuilds`: identical to the live view after real flows;
//! a row lost, a row changed and a stray row are each reported by a
//! verify, and repaired by a rebuild, which keeps what no event decides
//! (the trace of the request that placed an order).

use std::time::Duration;

use omnisaga_proto::{
    v1::{envelope::Payload, OrderReadyForShipment, PaymentAuthorized, PaymentFailed},
    v2::OrderShipped,
};
use omnisaga_runtime::testing;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{json_of, order_body, spawn_app, TestApp};

const WAIT: Duration = Duration::from_secs(30);

async fn place(app: &TestApp) -> Uuid {
    let resp = app
        .post_order(Some(&Uuid::new_v4().to_string()), &order_body())
        .await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    body["order_id"].as_str().unwrap().parse().unwrap()
}

async fn wait_status(app: &TestApp, id: Uuid, status: &str) {
    testing::wait_for(&format!("{id} to be {status}"), WAIT, || async {
        let o = json_of(app.http.get(format!("{}/v1/orders/{id}", app.url))).await;
        (o["status"] == status).then_some(())
    })
    .await
    .unwrap();
}

async fn rebuild(app: &TestApp, mode: &str) -> Value {
    testing::rebuild::run(app, "order", mode, None).await
}

/// The order view's report in `run`.
fn view(run: &Value) -> &Value {
    let report = run["report"].as_array().unwrap();
    assert_eq!(report.len(), 1, "the order service keeps one projection: {run}");
    assert_eq!(report[0]["projection"], "order_view");
    &report[0]["tables"][0]
}

#[tokio::test]
async fn the_order_view_is_rebuilt_from_the_streams_and_a_verify_finds_each_difference() {
    let app = spawn_app().await;
    let (placed, declined, shipped) = (place(&app).await, place(&app).await, place(&app).await);
    let failed = Payload::PaymentFailed(PaymentFailed {
        order_id: declined.to_string(),
        attempt: 1,
        reason: "card_declined".into(),
        retryable: true,
        ..Default::default()
    });
    app.publish_as("payment", &app.kafka.topics().payments, declined, failed)
        .await;
    let paid = Payload::PaymentAuthorized(PaymentAuthorized {
        order_id: shipped.to_string(),
        attempt: 1,
        ..Default::default()
    });
    app.publish_as("payment", &app.kafka.topics().payments, shipped, paid)
        .await;
    wait_status(&app, shipped, "PAID").await;
    for fact in [
        Payload::OrderReadyForShipment(OrderReadyForShipment {
            order_id: shipped.to_string(),
            ..Default::default()
        }),
        Payload::OrderShippedV2(OrderShipped {
            order_id: shipped.to_string(),
            ..Default::default()
        }),
    ] {
        app.publish_as("warehouse", &app.kafka.topics().warehouse, shipped, fact)
            .await;
    }
    wait_status(&app, declined, "AWAITING_PAYMENT").await;
    wait_status(&app, shipped, "SHIPPED").await;

    // What the saga wrote is what the events give.
    let run = rebuild(&app, "verify").await;
    assert_eq!(run["identical"], true, "{run}");
    let table = view(&run);
    assert_eq!(table["live_rows"], table["rebuilt_rows"]);
    assert!(table["rebuilt_rows"].as_i64().unwrap() >= 3, "{run}");
    assert!(run["events_done"].as_i64().unwrap() >= 7, "{run}");

    // One row lost, one changed, one that no stream gives; and a column no
    // event decides, which a rebuild must keep.
    let stray = Uuid::now_v7();
    for statement in [
        format!("DELETE FROM order_view WHERE order_id = '{placed}'"),
        format!("UPDATE order_view SET status = 'SHIPPED' WHERE order_id = '{declined}'"),
        format!(
            "INSERT INTO order_view (order_id, order_number, customer_id, status, created_at, updated_at)
             SELECT '{stray}', 'STRAY-1', customer_id, 'PLACED', now(), now() FROM order_view LIMIT 1"
        ),
        format!("UPDATE order_view SET trace_id = 'kept-as-it-was' WHERE order_id = '{shipped}'"),
    ] {
        sqlx::query(&statement).execute(&app.pool).await.unwrap();
    }
    let view_of = |id: Uuid| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_as::<_, (String, String, Option<String>)>(
                "SELECT order_number, status, trace_id FROM order_view WHERE order_id = $1",
            )
            .bind(id)
            .fetch_optional(&pool)
            .await
            .unwrap()
        }
    };
    let before = view_of(shipped).await;

    let run = rebuild(&app, "verify").await;
    assert_eq!(run["identical"], false, "{run}");
    testing::rebuild::assert_found(
        view(&run),
        (1, 1, 1),
        &[
            format!("missing {placed}"),
            format!("extra {stray}"),
            format!("different {declined} (status)"),
        ],
    );
    assert!(view_of(placed).await.is_none(), "a verify changed nothing");

    let run = rebuild(&app, "rebuild").await;
    assert_eq!(view(&run)["repaired"], 3, "{run}");
    assert!(view_of(placed).await.is_some_and(|v| v.1 == "PLACED"));
    assert_eq!(view_of(declined).await.unwrap().1, "AWAITING_PAYMENT");
    assert!(view_of(stray).await.is_none());
    assert_eq!(view_of(shipped).await, before, "what no event decides is kept");
    assert_eq!(rebuild(&app, "verify").await["identical"], true);
}

#[tokio::test]
async fn an_unknown_projection_or_mode_is_refused_and_starts_nothing() {
    let app = spawn_app().await;
    let admin = app.as_caller(&testing::auth::admin_token());
    for (body, code) in [
        (
            json!({ "mode": "verify", "projections": ["stock"] }),
            "validation_failed",
        ),
        (
            json!({ "mode": "verify", "projections": [] }),
            "validation_failed",
        ),
        (json!({ "mode": "repair" }), "validation_failed"),
        (json!({ "mode": "verify", "dry_run": true }), "unknown_field"),
    ] {
        let resp = app
            .send(
                admin
                    .post(format!("{}/v1/admin/rebuilds", app.admin_url))
                    .json(&body),
            )
            .await;
        testing::assert_error(resp, 422, code).await;
    }
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM rebuilds")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(runs, 0);
    let customer = app
        .http
        .post(format!("{}/v1/admin/rebuilds", app.admin_url))
        .json(&json!({ "mode": "verify" }))
        .send()
        .await
        .unwrap();
    assert_eq!(customer.status(), 403, "a customer may not start a rebuild");
}
