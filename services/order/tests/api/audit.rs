//! The audit log: who changed what, when and how it ended, with personal
//! data redacted, in an append-only table operators read over the API.

use omnisaga_auth::Scope;
use omnisaga_runtime::testing;
use serde_json::Value;

use crate::helpers::{json_of, order_body, spawn_app, CUSTOMER};

#[tokio::test]
async fn every_state_changing_call_is_logged_with_its_caller_and_outcome_and_kept() {
    let app = spawn_app().await;
    let resp = app.post_order(Some("k-audit"), &order_body()).await;
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let intruder = app.as_caller(&testing::auth::customer_token("cust-2"));
    let refused = intruder
        .post(format!("{}/v1/orders/{id}/cancel", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    let request_id = refused.headers()["x-request-id"].to_str().unwrap().to_owned();
    app.http
        .get(format!("{}/v1/orders/{id}", app.url))
        .send()
        .await
        .unwrap();

    let operator = app.as_caller(&testing::auth::admin_token());
    let page: Value = json_of(operator.get(format!("{}/v1/admin/audit", app.admin_url))).await;
    testing::openapi::check_response("order", "get", "/v1/admin/audit", 200, &page).unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "the two writes, not the read: {page}");
    let (cancel, place) = (&items[0], &items[1]);
    assert_eq!(place["subject"], CUSTOMER);
    assert_eq!(place["scopes"], "orders:read orders:write");
    assert_eq!(
        (place["method"].as_str(), place["route"].as_str()),
        (Some("POST"), Some("/v1/orders"))
    );
    assert_eq!(
        (place["status"].as_i64(), place["outcome"].as_str()),
        (Some(201), Some("ok"))
    );
    let payload = place["payload"].to_string();
    assert!(
        !payload.contains("Ada Lovelace") && !payload.contains("tok_visa"),
        "{payload}"
    );
    assert_eq!(place["payload"]["shipping_address"]["city"], "Berlin");
    assert_eq!(cancel["subject"], "cust-2");
    assert_eq!(cancel["route"], "/v1/orders/{id}/cancel");
    assert_eq!(
        (cancel["status"].as_i64(), cancel["outcome"].as_str()),
        (Some(404), Some("not_found"))
    );
    assert_eq!(cancel["request_id"], request_id.as_str());

    let theirs =
        json_of(operator.get(format!("{}/v1/admin/audit?subject=cust-2&limit=1", app.admin_url))).await;
    assert_eq!(theirs["items"].as_array().unwrap().len(), 1);
    assert_eq!(theirs["next_cursor"], Value::Null);
    let customer = app
        .http
        .get(format!("{}/v1/admin/audit", app.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(customer.status(), 403, "customers do not read the audit log");

    // Append-only, even for the service's own role.
    for change in [
        "UPDATE audit_log SET outcome = 'ok'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let refused = sqlx::query(change).execute(&app.pool).await;
        assert!(refused.is_err(), "{change} went through");
    }
    let kept: Vec<(String, String, i32)> =
        sqlx::query_as("SELECT method, route, status FROM audit_log ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let log = "/v1/admin/audit".to_owned();
    let get = "GET".to_owned();
    assert_eq!(
        kept[2..],
        [
            (get.clone(), log.clone(), 200),
            (get.clone(), log.clone(), 200),
            (get, log, 403)
        ],
        "the two writes, then the reads of the log (operators' reads are logged too): {kept:?}"
    );
}

#[tokio::test]
async fn an_operators_read_of_any_customers_orders_is_logged_and_a_customers_own_is_not() {
    let app = spawn_app().await;
    let resp = app.post_order(Some("k-read"), &order_body()).await;
    assert_eq!(resp.status(), 201);
    let mine = app
        .http
        .get(format!("{}/v1/orders", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(mine.status(), 200);
    let operator = app.as_caller(&testing::auth::admin_token());
    let found = operator
        .get(format!("{}/v1/admin/orders?status=PLACED", app.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(found.status(), 200);

    let page: Value = json_of(operator.get(format!("{}/v1/admin/audit?method=GET", app.admin_url))).await;
    let reads: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["subject"].as_str(),
                e["route"].as_str(),
                e["path"].as_str(),
                e["status"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        reads,
        [(
            Some("test-operator"),
            Some("/v1/admin/orders"),
            Some("/v1/admin/orders"),
            Some(200)
        )],
        "the operator's read, not the customer's: {page}"
    );
    let again: Value = json_of(operator.get(format!(
        "{}/v1/admin/audit?route=%2Fv1%2Fadmin%2Faudit",
        app.admin_url
    )))
    .await;
    assert_eq!(
        again["items"].as_array().unwrap().len(),
        1,
        "a read of the log is in it: {again}"
    );
}

#[tokio::test]
async fn only_the_payment_service_reads_a_payment_token_on_the_admin_listener_and_every_read_is_logged() {
    let app = spawn_app().await;
    let resp = app.post_order(Some("k-token"), &order_body()).await;
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/internal/orders/{id}/payment-methods/1");
    let payment = app.as_caller(&testing::auth::token(
        "payment-service",
        &[Scope::PaymentMethodsRead],
    ));
    let public = payment.get(format!("{}{path}", app.url)).send().await.unwrap();
    assert_eq!(public.status(), 404, "not on the public listener");
    let operator = app.as_caller(&testing::auth::operator_token(&[
        Scope::OrdersRead,
        Scope::StockRead,
    ]));
    let refused = operator
        .get(format!("{}{path}", app.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "admin is not payment-methods:read");
    let read: Value = json_of(payment.get(format!("{}{path}", app.admin_url))).await;
    assert_eq!(read["attempt"], 1, "{read}");

    let log = app.as_caller(&testing::auth::admin_token());
    let page: Value = json_of(log.get(format!(
        "{}/v1/admin/audit?subject=payment-service",
        app.admin_url
    )))
    .await;
    let items = page["items"].as_array().unwrap();
    // Only the read: the try on the public listener matched no route there.
    let summary: Vec<_> = items
        .iter()
        .map(|e| (e["method"].as_str(), e["route"].as_str(), e["status"].as_i64()))
        .collect();
    assert_eq!(
        summary,
        [(
            Some("GET"),
            Some("/v1/internal/orders/{id}/payment-methods/{attempt}"),
            Some(200)
        )],
        "{page}"
    );
    let page: Value =
        json_of(log.get(format!("{}/v1/admin/audit?subject=test-operator", app.admin_url))).await;
    let refused = page["items"].as_array().unwrap();
    assert!(
        refused.iter().any(|e| e["status"] == 403 && e["method"] == "GET"),
        "the refused read is logged too: {page}"
    );
}
