use std::collections::HashSet;

use serde_json::Value;

use crate::helpers::{json_of, order_body, spawn_app};

#[tokio::test]
async fn placing_an_order_answers_with_number_estimate_and_catalog_price() {
    let app = spawn_app().await;
    let resp = app.post_order(Some("key-1"), &order_body()).await;
    assert_eq!(resp.status(), 201);
    assert!(resp.headers().contains_key("x-request-id"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "PLACED");
    assert!(body["order_number"].as_str().unwrap().starts_with("OS-"));
    assert!(body["estimated_delivery"].as_str().unwrap().len() == 10);
    // 2 x 1250 + 1 x 1999 from the seed catalog, not from the request.
    assert_eq!(body["total"]["minor_units"], 4499);
    assert_eq!(body["total"]["currency"], "EUR");

    let order: Value = json_of(app.http.get(format!(
        "{}/v1/orders/{}",
        app.url,
        body["order_id"].as_str().unwrap()
    )))
    .await;
    assert_eq!(order["status"], "PLACED");
    assert_eq!(order["timeline"][0]["event_type"], "OrderPlaced");
    assert_eq!(order["customer_id"], "cust-1");
    assert_eq!(app.written().await, (1, 1));
}

#[tokio::test]
async fn the_same_idempotency_key_gives_one_order_and_the_same_response() {
    let app = spawn_app().await;
    let first: Value = app
        .post_order(Some("same-key"), &order_body())
        .await
        .json()
        .await
        .unwrap();
    let again = app.post_order(Some("same-key"), &order_body()).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await.unwrap(), first);

    let concurrent = futures_join(&app, 20).await;
    assert!(concurrent.iter().all(|(s, _)| *s == 201), "{concurrent:?}");
    let ids: HashSet<String> = concurrent
        .iter()
        .map(|(_, b)| b["order_id"].to_string())
        .collect();
    assert_eq!(ids.len(), 1, "20 concurrent retries made {} orders", ids.len());
    assert_eq!(app.written().await, (2, 2), "one order per key");
}

#[tokio::test]
async fn a_replayed_placement_takes_no_order_number() {
    let app = spawn_app().await;
    let number = |body: &Value| -> i64 {
        body["order_number"].as_str().unwrap()["OS-".len()..]
            .parse()
            .unwrap()
    };
    let first: Value = app
        .post_order(Some("k-1"), &order_body())
        .await
        .json()
        .await
        .unwrap();
    for _ in 0..3 {
        let again: Value = app
            .post_order(Some("k-1"), &order_body())
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(again, first);
    }
    let next: Value = app
        .post_order(Some("k-2"), &order_body())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        number(&next),
        number(&first) + 1,
        "the replays took numbers: {first} then {next}"
    );
}

async fn futures_join(app: &crate::helpers::TestApp, n: usize) -> Vec<(u16, Value)> {
    let mut handles = Vec::new();
    for _ in 0..n {
        let (http, url) = (app.http.clone(), app.url.clone());
        handles.push(tokio::spawn(async move {
            let r = http
                .post(format!("{url}/v1/orders"))
                .header("Idempotency-Key", "burst-key")
                .json(&order_body())
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn an_idempotency_key_reused_with_another_body_is_refused() {
    let app = spawn_app().await;
    assert_eq!(app.post_order(Some("k"), &order_body()).await.status(), 201);
    let mut other = order_body();
    other["items"][0]["quantity"] = 3.into();
    let resp = app.post_order(Some("k"), &other).await;
    assert_eq!(resp.status(), 422);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["code"],
        "idempotency_key_reused"
    );
    assert_eq!(app.written().await, (1, 1));
}

#[tokio::test]
async fn an_unknown_order_is_not_found() {
    let app = spawn_app().await;
    for id in ["01a20d7d-1508-77c2-b4f0-33e1730bd575", "not-a-uuid"] {
        let resp = app
            .http
            .get(format!("{}/v1/orders/{id}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.json::<Value>().await.unwrap()["code"], "not_found");
    }
}

#[tokio::test]
async fn the_catalog_lists_every_seeded_item_with_its_price() {
    let app = spawn_app().await;
    let body: Value = json_of(app.http.get(format!("{}/v1/catalog", app.url))).await;
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 6);
    let mug = items.iter().find(|i| i["sku"] == "SKU-MUG").unwrap();
    assert_eq!(mug["unit_price"]["minor_units"], 1250);
}
