//! Who may do what: every call needs a valid bearer token; the customer is
//! the token's subject; another customer's order is no such order (the
//! OWASP API Top 10's broken object level authorisation); scopes separate
//! reading from writing; a customer lists their own orders a page at a time.

use omnisaga_auth::Scope;
use omnisaga_runtime::testing;
use serde_json::{json, Value};

use crate::helpers::{json_of, order_body, spawn_app, TestApp, CUSTOMER};

/// Places an order as `CUSTOMER`; its id.
async fn place(app: &TestApp) -> String {
    let resp = app
        .post_order(Some(&uuid::Uuid::new_v4().to_string()), &order_body())
        .await;
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["order_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_call_without_a_valid_token_is_401_with_a_challenge_and_changes_nothing() {
    let app = spawn_app().await;
    let signer = testing::auth::signer();
    let expired = signer.mint_claims(&json!({
        "iss": "omnisaga-local", "aud": "omnisaga", "sub": CUSTOMER, "scope": "orders:write", "exp": 1_000_000
    }));
    let other_key = omnisaga_auth::Signer::generate("test").mint(
        CUSTOMER,
        &[Scope::OrdersWrite],
        std::time::Duration::from_secs(60),
    );
    let cases: [(&str, Option<String>); 5] = [
        ("no token", None),
        ("not a JWT", Some("Bearer abc.def".into())),
        ("expired", Some(format!("Bearer {expired}"))),
        ("another key", Some(format!("Bearer {other_key}"))),
        ("basic auth", Some("Basic dXNlcjpwYXNz".into())),
    ];
    for (case, header) in cases {
        let mut req = reqwest::Client::new()
            .post(format!("{}/v1/orders", app.url))
            .header("Idempotency-Key", format!("k-{case}"))
            .json(&order_body());
        if let Some(h) = header {
            req = req.header("Authorization", h);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{case}");
        let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(
            challenge.starts_with(r#"Bearer realm="omnisaga""#),
            "{case}: {challenge}"
        );
        let body: Value = resp.json().await.unwrap();
        testing::openapi::check_response("order", "post", "/v1/orders", 401, &body).unwrap();
        assert_eq!(body["code"], "unauthorized", "{case}");
    }
    assert_eq!(app.written().await, (0, 0));
    for open in ["/healthz", "/readyz", "/metrics"] {
        let resp = reqwest::get(format!("{}{open}", app.url)).await.unwrap();
        assert_eq!(resp.status(), 200, "{open} needs no token");
    }
}

#[tokio::test]
async fn the_customer_is_the_tokens_subject_never_the_body() {
    let app = spawn_app().await;
    let id = place(&app).await;
    let order: Value = json_of(app.http.get(format!("{}/v1/orders/{id}", app.url))).await;
    assert_eq!(order["customer_id"], CUSTOMER);

    let mut body = order_body();
    body["customer_id"] = json!("someone-else");
    let resp = app.post_order(Some("k-body-customer"), &body).await;
    assert_eq!(resp.status(), 422);
    let error: Value = resp.json().await.unwrap();
    assert_eq!(error["details"]["fields"][0]["field"], "customer_id", "{error}");
    assert_eq!(
        app.written().await,
        (1, 1),
        "nothing written for the refused body"
    );
}

#[tokio::test]
async fn another_customers_order_is_not_found_whatever_is_asked_of_it() {
    let app = spawn_app().await;
    let id = place(&app).await;
    let intruder = app.as_caller(&testing::auth::customer_token("cust-2"));
    let before = app.written().await;
    let attempts = [
        intruder.get(format!("{}/v1/orders/{id}", app.url)),
        intruder.post(format!("{}/v1/orders/{id}/cancel", app.url)),
        intruder
            .post(format!("{}/v1/orders/{id}/payment-retry", app.url))
            .header("Idempotency-Key", "k-intruder")
            .json(&json!({"payment_method": "tok_visa"})),
    ];
    for attempt in attempts {
        let resp = attempt.send().await.unwrap();
        assert_eq!(resp.status(), 404);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "not_found");
        assert_eq!(
            body["message"], "no such order",
            "the same answer as an order that does not exist"
        );
    }
    assert_eq!(app.written().await, before, "nothing changed");
    let listed: Value = json_of(intruder.get(format!("{}/v1/orders", app.url))).await;
    assert_eq!(listed["items"], json!([]), "their list is theirs");

    // An operator reading orders sees it.
    let operator = app.as_caller(&testing::auth::operator_token(&[Scope::OrdersRead]));
    let resp = operator
        .get(format!("{}/v1/orders/{id}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_read_only_token_reads_but_may_not_write() {
    let app = spawn_app().await;
    let id = place(&app).await;
    let reader = app.as_caller(&testing::auth::token(CUSTOMER, &[Scope::OrdersRead]));
    let resp = reader
        .get(format!("{}/v1/orders/{id}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = reader
        .post(format!("{}/v1/orders/{id}/cancel", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains(r#"error="insufficient_scope", scope="orders:write""#));
    let body: Value = resp.json().await.unwrap();
    testing::openapi::check_response("order", "post", "/v1/orders/{id}/cancel", 403, &body).unwrap();
    assert_eq!(body["code"], "forbidden");
    let analyst = app.as_caller(&testing::auth::token("analyst", &[Scope::AnalyticsRead]));
    let resp = analyst
        .get(format!("{}/v1/catalog", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "the catalog needs orders:read");
}

#[tokio::test]
async fn a_customer_pages_through_their_own_orders_newest_first() {
    let app = spawn_app().await;
    let mut placed = Vec::new();
    for _ in 0..5 {
        placed.push(place(&app).await);
    }
    placed.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/v1/orders?limit=2", app.url);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = json_of(app.http.get(url)).await;
        testing::openapi::check_response("order", "get", "/v1/orders", 200, &page).unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|o| o["order_id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, placed);
    for bad in ["limit=0", "limit=101", "cursor=nope"] {
        let resp = app
            .http
            .get(format!("{}/v1/orders?{bad}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 422, "{bad}");
    }
}
