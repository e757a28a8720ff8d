//! `GET /v1/orders/{order_id}/fulfilment`: an order's pick task and stock.

use std::time::Duration;

use omnisaga_runtime::testing;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_placed_order_shows_its_waiting_pick_task_and_reserved_stock() {
    let app = spawn_app().await;
    let order_id = app.place_order("SKU-LAMP", 2).await;
    let path = format!("/v1/orders/{order_id}/fulfilment");
    let view = testing::wait_for("the order's pick task", Duration::from_secs(30), || async {
        let resp = app
            .http
            .get(format!("{}{path}", app.admin_url))
            .send()
            .await
            .ok()?;
        let view = (resp.status() == 200).then_some(resp.json::<serde_json::Value>().await.ok()?)?;
        // The reservation and the pick task may be seen one before the other.
        (!view["pick_task"].is_null()).then_some(view)
    })
    .await
    .expect("a pick task within 30 s");
    assert_eq!(view["order_id"], order_id.to_string());
    let task = &view["pick_task"];
    assert_eq!(
        (&task["status"], &task["items"]),
        (
            &json!("WAITING_PAYMENT"),
            &json!([{"sku": "SKU-LAMP", "quantity": 2}])
        )
    );
    assert!(
        task["pick_task_id"].is_string() && task["created_at"].is_string() && task["updated_at"].is_string()
    );
    assert_eq!(
        view["stock"],
        json!({
            "reserved": true,
            "items": [{"sku": "SKU-LAMP", "quantity": 2}],
            "unavailable": false,
            "released": false,
            "shipped": false
        })
    );
}

#[tokio::test]
async fn an_order_the_warehouse_never_saw_is_404_with_the_error_envelope() {
    let app = spawn_app().await;
    let resp = app
        .http
        .get(format!(
            "{}/v1/orders/{}/fulfilment",
            app.admin_url,
            Uuid::new_v4()
        ))
        .send()
        .await
        .expect("request sent");
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.expect("a JSON body");
    assert_eq!(body["code"], "not_found");
    assert!(
        body["message"].as_str().unwrap().contains("knows nothing"),
        "{body}"
    );
    assert!(body["request_id"].is_string());
}

#[tokio::test]
async fn an_order_id_that_is_no_uuid_is_refused() {
    let app = spawn_app().await;
    let resp = app
        .http
        .get(format!("{}/v1/orders/not-a-uuid/fulfilment", app.admin_url))
        .send()
        .await
        .expect("request sent");
    assert_eq!(resp.status(), 422);
}
