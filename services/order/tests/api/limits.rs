//! Resource limits (the OWASP API Top 10's unrestricted resource
//! consumption and mass assignment): a client over its rate gets 429 with
//! `Retry-After`, and a body with a field the API does not take is refused.

use omnisaga_runtime::{limits::Limits, testing};
use serde_json::{json, Value};

use crate::helpers::{order_body, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_client_over_its_rate_is_told_when_to_come_back_and_others_are_not() {
    let app = spawn_app_with(|c| {
        c.limits = Limits {
            rate_per_second: 0.5,
            burst: 2.0,
            ..Limits::default()
        }
    })
    .await;
    let catalog = format!("{}/v1/catalog", app.url);
    for _ in 0..2 {
        assert_eq!(app.http.get(&catalog).send().await.unwrap().status(), 200);
    }
    let resp = app.http.get(&catalog).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    let retry_after: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = resp.json().await.unwrap();
    testing::openapi::check_response("order", "get", "/v1/catalog", 429, &body).unwrap();
    assert_eq!(body["code"], "rate_limited");

    let other = app.as_caller(&testing::auth::customer_token("cust-2"));
    assert_eq!(
        other.get(&catalog).send().await.unwrap().status(),
        200,
        "a bucket per client"
    );
    let operator = app.as_caller(&testing::auth::operator_token(&[
        omnisaga_auth::Scope::OrdersRead,
    ]));
    for _ in 0..5 {
        assert_eq!(
            operator.get(&catalog).send().await.unwrap().status(),
            200,
            "operators are not limited"
        );
    }
    // Payment's identity asks for one order's payment method per order: its
    // calls grow with the saga's rate, which no client's bucket may cap.
    let payment = app.as_caller(&testing::auth::token(
        "payment-service",
        &[omnisaga_auth::Scope::PaymentMethodsRead],
    ));
    for _ in 0..5 {
        assert_ne!(
            payment.get(&catalog).send().await.unwrap().status(),
            429,
            "a service's identity is not limited"
        );
    }
    let health = reqwest::get(format!("{}/healthz", app.url)).await.unwrap();
    assert_eq!(health.status(), 200, "probes are not a client's");
}

#[tokio::test]
async fn a_field_the_server_decides_is_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    let mut cases = Vec::new();
    for (field, value) in [
        ("total", json!({"minor_units": 1, "currency": "EUR"})),
        ("status", json!("SHIPPED")),
    ] {
        let mut body = order_body();
        body[field] = value;
        cases.push((field, body));
    }
    let mut priced = order_body();
    priced["items"][0]["unit_price"] = json!({"minor_units": 1, "currency": "EUR"});
    cases.push(("items[0].unit_price", priced));
    let mut addressed = order_body();
    addressed["shipping_address"]["is_admin"] = json!(true);
    cases.push(("shipping_address.is_admin", addressed));
    for (i, (field, body)) in cases.into_iter().enumerate() {
        let resp = app.post_order(Some(&format!("k-unknown-{i}")), &body).await;
        assert_eq!(resp.status(), 422, "{field}");
        let error: Value = resp.json().await.unwrap();
        testing::openapi::check_response("order", "post", "/v1/orders", 422, &error).unwrap();
        assert_eq!(error["code"], "unknown_field", "{field}: {error}");
    }
    assert_eq!(app.written().await, (0, 0));
}
