//! `POST /v1/catalog/batch`: catalog entries added and changed in a batch,
//! applied whole or not at all; what `GET /v1/catalog` and new orders see.

use omnisaga_runtime::testing::{self, openapi::check_response};
use serde_json::{json, Value};

use crate::helpers::{json_of, order_body, spawn_app, TestApp};

const PATH: &str = "/v1/catalog/batch";

impl TestApp {
    /// Sends `body` as JSON lines (or CSV) under `batch_id` as an operator;
    /// the status and answer, checked against the OpenAPI document.
    async fn import_catalog(&self, batch_id: &str, content_type: &str, body: &str) -> (u16, Value) {
        let resp = self
            .as_caller(&testing::auth::admin_token())
            .post(format!("{}{PATH}", self.admin_url))
            .header("content-type", content_type)
            .header("batch-id", batch_id)
            .body(body.to_owned())
            .send()
            .await
            .expect("request sent");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.expect("a JSON body");
        check_response("order", "post", PATH, status, &body).unwrap();
        (status, body)
    }

    /// The catalog entry of `sku`, if there is one.
    async fn entry(&self, sku: &str) -> Option<Value> {
        let catalog = json_of(self.http.get(format!("{}/v1/catalog", self.url))).await;
        catalog["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["sku"] == sku)
            .cloned()
    }
}

#[tokio::test]
async fn a_batch_adds_and_reprices_entries_and_new_orders_pay_the_new_price() {
    let app = spawn_app().await;
    let rows = concat!(
        "{\"sku\": \"SKU-MUG\", \"name\": \"Enamel camping mug\", \"unit_price_minor\": 1400, \"currency\": \"EUR\"}\n",
        "{\"sku\": \"SKU-KETTLE\", \"name\": \"Stove-top kettle\", \"unit_price_minor\": 3450, \"currency\": \"EUR\"}\n",
    );
    let (status, body) = app.import_catalog("spring", "application/x-ndjson", rows).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"batch_id": "spring", "kind": "catalog", "rows": 2, "replayed": false})
    );
    let kettle = app
        .entry("SKU-KETTLE")
        .await
        .expect("the kettle is in the catalog");
    assert_eq!(
        kettle["unit_price"],
        json!({"minor_units": 3450, "currency": "EUR"})
    );
    assert_eq!(
        app.entry("SKU-MUG").await.unwrap()["unit_price"]["minor_units"],
        1400
    );
    // The order body has two mugs and a T-shirt (1999).
    let placed = app.post_order(Some("after-spring"), &order_body()).await;
    assert_eq!(placed.status(), 201);
    let placed: Value = placed.json().await.unwrap();
    assert_eq!(placed["total"]["minor_units"], 2 * 1400 + 1999, "{placed}");
}

#[tokio::test]
async fn a_batch_with_a_bad_row_changes_no_entry() {
    let app = spawn_app().await;
    let csv = "sku,name,unit_price_minor,currency\n\
               SKU-MUG,Enamel camping mug,1400,EUR\n\
               SKU-KETTLE,Stove-top kettle,0,EUR\n\
               SKU-PAN,,2000,euro\n";
    let (status, body) = app.import_catalog("bad", "text/csv", csv).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("validation_failed")),
        "{body}"
    );
    let problems: Vec<(u64, &str)> = body["details"]["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(problems, [(3, "unit_price_minor"), (4, "name"), (4, "currency")]);
    assert_eq!(
        app.entry("SKU-MUG").await.unwrap()["unit_price"]["minor_units"],
        1250,
        "the good row was not applied either"
    );
    assert!(app.entry("SKU-KETTLE").await.is_none());
}

#[tokio::test]
async fn only_operators_import_and_a_batch_may_be_far_larger_than_an_order() {
    let app = spawn_app().await;
    let row = "{\"sku\": \"SKU-MUG\", \"name\": \"Mug\", \"unit_price_minor\": 1, \"currency\": \"EUR\"}\n";
    let resp = app
        .http
        .post(format!("{}{PATH}", app.admin_url))
        .header("content-type", "application/x-ndjson")
        .header("batch-id", "cheap-mugs")
        .body(row)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "a customer's token");
    assert_eq!(
        app.entry("SKU-MUG").await.unwrap()["unit_price"]["minor_units"],
        1250
    );
    // A batch may be far larger than an order: 1000 rows (about 90 KiB).
    let rows: String = (0..1000)
        .map(|i| format!("{{\"sku\": \"SKU-BULK-{i}\", \"name\": \"Bulk {i}\", \"unit_price_minor\": 100, \"currency\": \"EUR\"}}\n"))
        .collect();
    assert!(rows.len() > 64 * 1024);
    let (status, body) = app.import_catalog("bulk", "application/x-ndjson", &rows).await;
    assert_eq!((status, &body["rows"]), (200, &json!(1000)), "{body}");
    assert!(app.entry("SKU-BULK-999").await.is_some());
}
