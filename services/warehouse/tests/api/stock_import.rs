//! `POST /v1/stock/batch`: goods received, a batch applied whole or not at
//! all, once per batch id.

use omnisaga_runtime::testing::{self, openapi::check_response};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

const PATH: &str = "/v1/stock/batch";

impl TestApp {
    /// Sends `body` as a batch of `content_type` under `batch_id` (none if
    /// `None`) with the app's admin token; the status and JSON answer,
    /// checked against the OpenAPI document.
    async fn import(&self, batch_id: Option<&str>, content_type: &str, body: &str) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{PATH}", self.admin_url))
            .header("content-type", content_type)
            .body(body.to_owned());
        if let Some(id) = batch_id {
            req = req.header("batch-id", id);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.expect("a JSON body");
        check_response("warehouse", "post", PATH, status, &body).unwrap();
        (status, body)
    }

    async fn on_hand(&self, sku: &str) -> i64 {
        self.stock_of(sku).await["on_hand"].as_i64().expect("on_hand")
    }
}

#[tokio::test]
async fn a_receipt_adds_to_what_is_on_hand_once_per_batch_id() {
    let app = spawn_app().await;
    let csv = "sku,quantity\nSKU-LAMP,5\n\nSKU-NEW-KETTLE, 12\n";
    let (status, body) = app.import(Some("delivery-1"), "text/csv", csv).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"batch_id": "delivery-1", "kind": "stock", "rows": 2, "replayed": false})
    );
    assert_eq!(app.on_hand("SKU-LAMP").await, 25 + 5);
    assert_eq!(
        app.stock_of("SKU-NEW-KETTLE").await,
        json!({"sku": "SKU-NEW-KETTLE", "on_hand": 12, "reserved": 0, "available": 12})
    );
    // Each row is recorded as goods received, with the stock it adds.
    let import = |q: i64| ("import".to_owned(), q);
    let seed = ("seed".to_owned(), 25);
    assert_eq!(app.receipts("SKU-LAMP").await, [seed.clone(), import(5)]);
    assert_eq!(app.receipts("SKU-NEW-KETTLE").await, [import(12)]);

    // The same batch again (a retry after a lost answer) adds nothing.
    let (status, body) = app.import(Some("delivery-1"), "text/csv", csv).await;
    assert_eq!((status, &body["replayed"]), (200, &json!(true)), "{body}");
    assert_eq!(app.on_hand("SKU-LAMP").await, 30);
    assert_eq!(app.receipts("SKU-LAMP").await, [seed.clone(), import(5)]);

    // Its id with another file is refused, and changes nothing.
    let (status, body) = app
        .import(Some("delivery-1"), "text/csv", "sku,quantity\nSKU-LAMP,7\n")
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("batch_id_reused")),
        "{body}"
    );
    assert_eq!(app.on_hand("SKU-LAMP").await, 30);

    // A second delivery of the same goods is a batch of its own, JSON lines this time.
    let (status, body) = app
        .import(
            Some("delivery-2"),
            "application/x-ndjson",
            "{\"sku\": \"SKU-LAMP\", \"quantity\": 5}\n",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.on_hand("SKU-LAMP").await, 35);
    assert_eq!(app.receipts("SKU-LAMP").await, [seed, import(5), import(5)]);
}

#[tokio::test]
async fn a_batch_of_a_thousand_rows_is_received_with_a_receipt_each() {
    let app = spawn_app().await;
    let rows: String = (0..1000)
        .map(|n| format!("SKU-BULK-{n:04},{}\n", n + 1))
        .collect();
    let csv = format!("sku,quantity\n{rows}");
    let started = std::time::Instant::now();
    let (status, body) = app.import(Some("bulk-1"), "text/csv", &csv).await;
    eprintln!("a batch of 1,000 new SKUs took {:?}", started.elapsed());
    assert_eq!(status, 200, "{body}");
    // The same goods again: every SKU stocked, every stream one longer.
    let started = std::time::Instant::now();
    let (status, body) = app.import(Some("bulk-2"), "text/csv", &csv).await;
    eprintln!("a batch of 1,000 stocked SKUs took {:?}", started.elapsed());
    assert_eq!(status, 200, "{body}");
    let import = |q: i64| ("import".to_owned(), q);
    assert_eq!(app.receipts("SKU-BULK-0999").await, [import(1000), import(1000)]);
    assert_eq!(app.on_hand("SKU-BULK-0999").await, 2000);
    let receipts: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'GoodsReceived'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(receipts, 6 + 2 * 1000);
}

#[tokio::test]
async fn one_bad_row_and_nothing_is_applied_with_every_problem_reported() {
    let app = spawn_app().await;
    let csv = "sku,quantity\nSKU-LAMP,5\nSKU-MUG,-3\n,4\nSKU-LAMP,1\nSKU-BOTTLE,many\n";
    let (status, body) = app.import(Some("bad-1"), "text/csv", csv).await;
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
    assert_eq!(
        problems,
        [(3, "quantity"), (4, "sku"), (5, "sku"), (6, "quantity")]
    );
    assert_eq!(body["details"]["invalid_rows"], 4);
    assert_eq!(
        app.on_hand("SKU-LAMP").await,
        25,
        "the good row was not applied either"
    );

    // Fixed, the file goes under the same id: a refused batch was never applied.
    let fixed = "sku,quantity\nSKU-LAMP,5\nSKU-MUG,3\n";
    let (status, body) = app.import(Some("bad-1"), "text/csv", fixed).await;
    assert_eq!((status, &body["replayed"]), (200, &json!(false)), "{body}");
    assert_eq!(app.on_hand("SKU-LAMP").await, 30);
}

#[tokio::test]
async fn the_same_batch_sent_twice_at_once_is_applied_once() {
    let app = spawn_app().await;
    let csv = "sku,quantity\nSKU-MUG,10\nSKU-RARE,2\n";
    let before = app.on_hand("SKU-MUG").await;
    let (a, b) = tokio::join!(
        app.import(Some("twice"), "text/csv", csv),
        app.import(Some("twice"), "text/csv", csv)
    );
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    let replayed = [&a.1, &b.1].iter().filter(|b| b["replayed"] == true).count();
    assert_eq!(replayed, 1, "{a:?} {b:?}");
    assert_eq!(app.on_hand("SKU-MUG").await, before + 10);
}

#[tokio::test]
async fn requests_that_are_not_a_batch_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let csv = "sku,quantity\nSKU-LAMP,5\n";
    let cases = [
        (None, "text/csv", csv, 400, "missing_batch_id"),
        (Some("a b"), "text/csv", csv, 400, "invalid_batch_id"),
        (Some("x"), "application/json", "[]", 415, "unsupported_media_type"),
        (Some("x"), "text/csv", "sku,quantity\n", 422, "validation_failed"),
        (
            Some("x"),
            "text/csv",
            "sku,quantity\nSKU-LAMP,5,9\n",
            400,
            "unreadable_batch",
        ),
        (
            Some("x"),
            "application/x-ndjson",
            "{\"sku\": \"SKU-LAMP\", \"quantity\": 5, \"price\": 1}\n",
            422,
            "validation_failed",
        ),
        (
            Some("x"),
            "application/x-ndjson",
            "not json\n",
            400,
            "unreadable_batch",
        ),
    ];
    for (id, content_type, body, status, code) in cases {
        let (got, answer) = app.import(id, content_type, body).await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{content_type} {body:?}: {answer}"
        );
    }
    let big = format!("sku,quantity\n{}", "SKU-LAMP,1\n".repeat(20_001));
    let (got, answer) = app.import(Some("big"), "text/csv", &big).await;
    assert_eq!(
        (got, answer["code"].as_str()),
        (413, Some("payload_too_large")),
        "{answer}"
    );
    assert_eq!(app.on_hand("SKU-LAMP").await, 25);

    // Only operators import: a customer's token is refused.
    let customer = testing::auth::client_with(&testing::auth::customer_token("c-1"));
    let resp = customer
        .post(format!("{}{PATH}", app.admin_url))
        .header("content-type", "text/csv")
        .header("batch-id", "mine")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(app.on_hand("SKU-LAMP").await, 25);
}

#[tokio::test]
async fn a_stock_import_token_imports_stock_and_nothing_else_and_admin_alone_does_not_import() {
    use omnisaga_auth::Scope;
    let app = spawn_app().await;
    let post = |token: String, batch: &'static str| {
        let url = format!("{}{PATH}", app.admin_url);
        async move {
            testing::auth::client_with(&token)
                .post(url)
                .header("content-type", "text/csv")
                .header("batch-id", batch)
                .body("sku,quantity\nSKU-LAMP,4\n")
                .send()
                .await
                .unwrap()
        }
    };
    // The nightly CronJob's token: this scope alone.
    let nightly = testing::auth::token("stock-import", &[Scope::StockImport]);
    let resp = post(nightly.clone(), "night-1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.on_hand("SKU-LAMP").await, 25 + 4);
    for (method, path) in [
        ("GET", "/v1/stock".to_owned()),
        ("GET", "/v1/pick-tasks/backlog".to_owned()),
        ("GET", "/v1/admin/dead-letters".to_owned()),
    ] {
        let resp = testing::auth::client_with(&nightly)
            .request(method.parse().unwrap(), format!("{}{path}", app.admin_url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{method} {path} with stock:import alone");
    }
    // An operator's token without the scope is refused, and adds nothing.
    let resp = post(testing::auth::token("ops", &[Scope::Admin]), "night-2").await;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("stock:import"),
        "{body}"
    );
    assert_eq!(app.on_hand("SKU-LAMP").await, 29);
}
