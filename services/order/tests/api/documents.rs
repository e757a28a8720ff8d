//! The API's own description: the OpenAPI document at `/v1/openapi.json`
//! and its page at `/docs`, served without a token, the same document the
//! repository checks in.

use omnisaga_runtime::testing;
use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_served_document_is_the_checked_in_one_and_needs_no_token() {
    let app = spawn_app().await;
    let anonymous = reqwest::Client::new();
    let resp = anonymous
        .get(format!("{}/v1/openapi.json", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let served: Value = resp.json().await.unwrap();
    assert_eq!(served, testing::openapi::document("order").unwrap());
    assert_eq!(served["openapi"], "3.1.0");
    // Everything else still needs one.
    let orders = anonymous
        .get(format!("{}/v1/orders", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(orders.status(), 401);
}

#[tokio::test]
async fn the_docs_page_shows_every_operation_of_the_document() {
    let app = spawn_app().await;
    let resp = reqwest::get(format!("{}/docs", app.url)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = resp.text().await.unwrap();
    let document = testing::openapi::document("order").unwrap();
    let mut operations = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let heading = format!("<span class=\"method\">{method}</span> <code>{path}</code>");
            assert!(page.contains(&heading), "{method} {path} is not on the page");
            let summary = op["summary"].as_str().unwrap_or_default();
            assert!(
                page.contains(&summary.replace('\'', "&#39;")) || page.contains(summary),
                "{method} {path}: its summary {summary:?} is not on the page"
            );
            operations += 1;
        }
    }
    assert!(operations >= 17, "only {operations} operations");
    assert!(page.contains("Needs a bearer token with scope <code>orders:write</code>"));
}
