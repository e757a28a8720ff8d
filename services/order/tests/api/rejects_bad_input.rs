//! Each malformed or invalid request gets a 4xx JSON error with a code and
//! the request id, and writes nothing.

use serde_json::{json, Value};

use crate::helpers::{order_body, spawn_app, TestApp};

async fn assert_rejected(app: &TestApp, resp: reqwest::Response, status: u16, code: &str) {
    assert_eq!(resp.status(), status, "expected {status} {code}");
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert!(!body["message"].as_str().unwrap().is_empty());
    assert_eq!(body["request_id"], request_id.as_str());
    assert_eq!(app.written().await, (0, 0), "a rejected request wrote something");
}

/// Turns the valid order body into an invalid one.
type Mutation = Box<dyn Fn(&mut Value)>;

#[tokio::test]
async fn invalid_orders_are_rejected_with_the_reason_and_change_nothing() {
    let app = spawn_app().await;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "unknown sku",
            Box::new(|b| b["items"][0]["sku"] = json!("NOPE")),
            "unknown_sku",
        ),
        (
            "quantity 0",
            Box::new(|b| b["items"][0]["quantity"] = json!(0)),
            "validation_failed",
        ),
        (
            "quantity above limit",
            Box::new(|b| b["items"][0]["quantity"] = json!(101)),
            "validation_failed",
        ),
        (
            "negative quantity",
            Box::new(|b| b["items"][0]["quantity"] = json!(-1)),
            "validation_failed",
        ),
        (
            "no items",
            Box::new(|b| b["items"] = json!([])),
            "validation_failed",
        ),
        (
            "duplicate sku",
            Box::new(|b| b["items"][1]["sku"] = json!("SKU-MUG")),
            "validation_failed",
        ),
        (
            "bad country",
            Box::new(|b| b["shipping_address"]["country"] = json!("Germany")),
            "validation_failed",
        ),
        (
            "empty name",
            Box::new(|b| b["shipping_address"]["name"] = json!("  ")),
            "validation_failed",
        ),
        (
            "unknown channel",
            Box::new(|b| b["channel"] = json!("fax")),
            "validation_failed",
        ),
        (
            "missing address",
            Box::new(|b| {
                b.as_object_mut().unwrap().remove("shipping_address");
            }),
            "validation_failed",
        ),
        (
            "quantity as text",
            Box::new(|b| b["items"][0]["quantity"] = json!("two")),
            "validation_failed",
        ),
        (
            "bad payment token",
            Box::new(|b| b["payment_method"] = json!("4111 1111 1111 1111")),
            "validation_failed",
        ),
    ];
    for (i, (name, mutate, code)) in cases.into_iter().enumerate() {
        let mut body = order_body();
        mutate(&mut body);
        let resp = app.post_order(Some(&format!("key-{i}")), &body).await;
        assert!(resp.status().is_client_error(), "{name}");
        assert_rejected(&app, resp, 422, code).await;
    }
}

#[tokio::test]
async fn a_missing_or_malformed_idempotency_key_is_rejected() {
    let app = spawn_app().await;
    let resp = app.post_order(None, &order_body()).await;
    assert_rejected(&app, resp, 400, "missing_idempotency_key").await;
    for bad in ["has space", &"k".repeat(129)] {
        let resp = app.post_order(Some(bad), &order_body()).await;
        assert_rejected(&app, resp, 400, "invalid_idempotency_key").await;
    }
}

#[tokio::test]
async fn malformed_json_wrong_content_type_and_oversized_bodies_are_rejected() {
    let app = spawn_app().await;
    let post = || {
        app.http
            .post(format!("{}/v1/orders", app.url))
            .header("Idempotency-Key", "k")
    };

    let resp = post()
        .header("Content-Type", "application/json")
        .body("{\"channel\": ")
        .send()
        .await
        .unwrap();
    assert_rejected(&app, resp, 400, "malformed_json").await;

    let resp = post()
        .header("Content-Type", "text/plain")
        .body(order_body().to_string())
        .send()
        .await
        .unwrap();
    assert_rejected(&app, resp, 415, "unsupported_media_type").await;

    let mut big = order_body();
    big["shipping_address"]["line2"] = json!("x".repeat(70 * 1024));
    let resp = post().json(&big).send().await.unwrap();
    assert_rejected(&app, resp, 413, "payload_too_large").await;
}

#[tokio::test]
async fn the_request_id_is_echoed_and_appears_in_errors() {
    let app = spawn_app().await;
    let resp = app
        .http
        .post(format!("{}/v1/orders", app.url))
        .header("X-Request-Id", "req-abc-123")
        .json(&order_body())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-abc-123");
    assert_eq!(resp.json::<Value>().await.unwrap()["request_id"], "req-abc-123");
}
