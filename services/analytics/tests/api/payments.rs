//! `GET /v1/customers/{id}/payments`: a customer's payment answers and
//! voids, newest first, a page at a time, for a CRM.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use omnisaga_proto::v1::{
    envelope::Payload, Channel, Money, PaymentAuthorized, PaymentFailed, PaymentVoided,
};
use omnisaga_runtime::testing;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    helpers::{spawn_app, TestApp},
    window::{at, placed_by},
};

fn t(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 3, 12, 0, second).unwrap()
}

fn eur(minor_units: i64) -> Option<Money> {
    Some(Money {
        minor_units,
        currency: "EUR".into(),
    })
}

async fn pay(app: &TestApp, order_id: Uuid, payload: Payload, second: u32) {
    let env = testing::envelope("payment", &order_id.to_string(), payload);
    app.publish(&app.kafka.topics().payments, &at(env, t(second)))
        .await;
}

async fn history(app: &TestApp, customer: &str, query: &str) -> Value {
    let resp = app
        .get(&format!("/v1/customers/{customer}/payments?{query}"))
        .await;
    assert_eq!(resp.status(), 200, "{query}");
    let body: Value = resp.json().await.unwrap();
    testing::openapi::check_response("analytics", "get", "/v1/customers/{id}/payments", 200, &body).unwrap();
    body
}

#[tokio::test]
async fn a_customers_payments_are_listed_newest_first_a_page_at_a_time() {
    let app = spawn_app().await;
    let orders = app.kafka.topics().orders;
    let customer = format!("crm-{}", Uuid::new_v4().simple());
    let (first, second, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let id = |o: Uuid| o.to_string();
    app.publish(&orders, &placed_by(first, &customer, Channel::Web, t(0)))
        .await;
    let declined = PaymentFailed {
        order_id: id(first),
        payment_id: "p-1".into(),
        amount: eur(1250),
        attempt: 1,
        reason: "card_declined".into(),
        retryable: true,
    };
    pay(&app, first, Payload::PaymentFailed(declined), 1).await;
    let retried = PaymentAuthorized {
        order_id: id(first),
        payment_id: "p-2".into(),
        amount: eur(1250),
        attempt: 2,
    };
    pay(&app, first, Payload::PaymentAuthorized(retried), 2).await;
    // The second order's payment arrives before its placement names the customer.
    let authorized = PaymentAuthorized {
        order_id: id(second),
        payment_id: "p-3".into(),
        amount: eur(990),
        attempt: 1,
    };
    pay(&app, second, Payload::PaymentAuthorized(authorized), 4).await;
    let voided = PaymentVoided {
        order_id: id(second),
        payment_id: "p-3".into(),
        amount: eur(990),
    };
    pay(&app, second, Payload::PaymentVoided(voided), 5).await;
    app.publish(&orders, &placed_by(second, &customer, Channel::Pos, t(3)))
        .await;
    // Another customer's order and payment.
    app.publish(&orders, &placed_by(other, "someone-else", Channel::Web, t(0)))
        .await;
    let theirs = PaymentAuthorized {
        order_id: id(other),
        payment_id: "p-9".into(),
        amount: eur(100),
        attempt: 1,
    };
    pay(&app, other, Payload::PaymentAuthorized(theirs), 6).await;

    let page = testing::wait_for(
        "the four payments to be listed",
        Duration::from_secs(30),
        || async {
            let page = history(&app, &customer, "limit=3").await;
            let listed = page["items"].as_array().unwrap().len() == 3 && !page["next_cursor"].is_null();
            listed.then_some(page)
        },
    )
    .await
    .unwrap();
    assert_eq!(page["customer_id"], customer.as_str());
    let brief = |p: &Value| {
        (
            p["payment_id"].as_str().unwrap().to_owned(),
            p["outcome"].as_str().unwrap().to_owned(),
        )
    };
    let listed: Vec<_> = page["items"].as_array().unwrap().iter().map(brief).collect();
    assert_eq!(
        listed,
        [
            ("p-3".to_owned(), "voided".to_owned()),
            ("p-3".to_owned(), "authorized".to_owned()),
            ("p-2".to_owned(), "authorized".to_owned())
        ]
    );
    assert_eq!(
        page["items"][0],
        json!({
            "order_id": id(second), "payment_id": "p-3", "attempt": null, "outcome": "voided",
            "amount_minor_units": 990, "currency": "EUR", "reason": null, "at": "2026-11-03T12:00:05Z",
        })
    );
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = history(&app, &customer, &format!("limit=3&cursor={cursor}")).await;
    assert_eq!(
        rest,
        json!({"customer_id": customer, "next_cursor": null, "items": [{
            "order_id": id(first), "payment_id": "p-1", "attempt": 1, "outcome": "declined",
            "amount_minor_units": 1250, "currency": "EUR", "reason": "card_declined", "at": "2026-11-03T12:00:01Z",
        }]})
    );
    let all = history(&app, &customer, "").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 4, "{all}");
    assert!(all["next_cursor"].is_null());

    let nobody = history(&app, "nobody-at-all", "").await;
    assert_eq!(nobody["items"], json!([]));

    for query in ["limit=0", "limit=101", "cursor=12-nothex"] {
        let resp = app
            .get(&format!("/v1/customers/{customer}/payments?{query}"))
            .await;
        assert_eq!(resp.status(), 422, "{query}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "validation_failed", "{query}: {body}");
        testing::openapi::check_response("analytics", "get", "/v1/customers/{id}/payments", 422, &body)
            .unwrap();
    }
}

#[tokio::test]
async fn reading_a_customers_payments_or_an_export_is_audited_and_the_summary_is_not() {
    let app = spawn_app().await;
    assert_eq!(app.get("/v1/summary").await.status(), 200);
    history(&app, "c-9", "limit=5").await;
    let export = app
        .get("/v1/exports/orders.csv?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z")
        .await;
    assert_eq!(export.status(), 200);
    export.text().await.unwrap();

    let logged: Vec<(String, String, String, i32)> =
        sqlx::query_as("SELECT method, route, path, status FROM audit_log ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let row = |route: &str, path: &str| ("GET".to_owned(), route.to_owned(), path.to_owned(), 200);
    assert_eq!(
        logged,
        [
            row("/v1/customers/{id}/payments", "/v1/customers/c-9/payments"),
            row("/v1/exports/orders.csv", "/v1/exports/orders.csv"),
        ],
        "the reads that show customers' data, not the summary"
    );
}
