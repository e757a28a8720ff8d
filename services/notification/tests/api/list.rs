//! `GET /v1/orders/{order_id}/notifications`: the messages an order's
//! customer got; its deprecated form `GET /v1/notifications?order_id=`,
//! with its headers, and what a bad query gets.

use std::time::Duration;

use omnisaga_runtime::testing::{self, openapi::check_response};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::spawn_app;

#[tokio::test]
async fn listing_needs_an_order_id_that_is_a_uuid() {
    let app = spawn_app().await;
    for (query, message) in [
        ("", "the order_id query parameter is required"),
        ("order_id=OS-1234", "order_id must be a UUID"),
    ] {
        let resp = app.list(query).await;
        assert_eq!(resp.status(), 422, "?{query}");
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"code": "validation_failed", "message": message, "request_id": "test-request"})
        );
    }
}

#[tokio::test]
async fn an_order_nobody_told_about_has_no_messages_and_an_id_that_is_no_uuid_is_no_order() {
    let app = spawn_app().await;
    let resp = app.messages(&Uuid::new_v4().to_string()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"items": []}));
    let resp = app.messages("OS-1234").await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    check_response(
        "notification",
        "get",
        "/v1/orders/{order_id}/notifications",
        404,
        &body,
    )
    .unwrap();
}

#[tokio::test]
async fn the_query_form_answers_the_same_with_its_deprecation_sunset_and_successor() {
    let app = spawn_app().await;
    let order_id = app.place_order("OS-0003", "cust-7").await;
    testing::wait_for("the confirmation to be sent", Duration::from_secs(30), || async {
        let body: Value = app.messages(&order_id.to_string()).await.json().await.ok()?;
        (body["items"][0]["status"] == "SENT").then_some(())
    })
    .await
    .unwrap();

    let current = app.messages(&order_id.to_string()).await;
    assert!(current.headers().get("deprecation").is_none());
    let current: Value = current.json().await.unwrap();
    check_response(
        "notification",
        "get",
        "/v1/orders/{order_id}/notifications",
        200,
        &current,
    )
    .unwrap();

    let old = app.list(&format!("order_id={order_id}")).await;
    assert_eq!(old.status(), 200);
    let headers = old.headers().clone();
    assert_eq!(headers["deprecation"], "@1796342400");
    assert_eq!(headers["sunset"], "Wed, 30 Jun 2027 23:59:59 GMT");
    assert_eq!(
        headers["link"].to_str().unwrap(),
        format!("</v1/orders/{order_id}/notifications>; rel=\"successor-version\"")
    );
    let old: Value = old.json().await.unwrap();
    check_response("notification", "get", "/v1/notifications", 200, &old).unwrap();
    assert_eq!(old, current);

    // Operators see who still calls it.
    let metrics = reqwest::get(format!("{}/metrics", app.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("omnisaga_deprecated_calls_total{")
                && l.contains("route=\"/v1/notifications\"")),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_placed_order_gets_its_confirmation_sent() {
    let app = spawn_app().await;
    let order_id = app.place_order("OS-0001", "cust-7").await;

    let items = testing::wait_for("the confirmation to be sent", Duration::from_secs(30), || async {
        let body: Value = app.messages(&order_id.to_string()).await.json().await.ok()?;
        let items = body["items"].as_array()?.clone();
        items
            .iter()
            .all(|n| n["status"] == "SENT")
            .then_some(items)
            .filter(|i| !i.is_empty())
    })
    .await
    .unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    let sent = &items[0];
    assert_eq!(sent["order_id"], order_id.to_string());
    assert_eq!(sent["template"], "order_created");
    assert_eq!(sent["source_event_type"], "OrderPlaced");
    assert_eq!(sent["channel"], "log");
    assert_eq!(
        sent["text"],
        "Order created: OS-0001 is confirmed. We'll keep you posted."
    );
    assert!(sent["sent_at"].is_string(), "{sent}");
}

#[tokio::test]
async fn a_customer_reads_their_own_orders_messages_and_no_one_elses() {
    let app = spawn_app().await;
    let order_id = app.place_order("OS-0002", "cust-7").await;
    let path = format!("{}/v1/orders/{order_id}/notifications", app.url);
    testing::wait_for("the recipient to be known", Duration::from_secs(30), || async {
        let body: Value = app.messages(&order_id.to_string()).await.json().await.ok()?;
        (!body["items"].as_array()?.is_empty()).then_some(())
    })
    .await
    .unwrap();

    let owner = testing::auth::client_with(&testing::auth::customer_token("cust-7"));
    let resp = owner.get(&path).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["items"][0]["template"], "order_created");

    let other = testing::auth::client_with(&testing::auth::customer_token("cust-8"));
    for url in [
        path.clone(),
        format!("{}/v1/orders/{}/notifications", app.url, Uuid::new_v4()),
        format!("{}/v1/notifications?order_id={order_id}", app.url),
    ] {
        let resp = other.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{url}");
        assert_eq!(resp.json::<Value>().await.unwrap()["message"], "no such order");
    }
    let analyst = testing::auth::client_with(&testing::auth::token(
        "analyst",
        &[omnisaga_auth::Scope::AnalyticsRead],
    ));
    assert_eq!(analyst.get(&path).send().await.unwrap().status(), 403);
}
