//! `POST /v1/admin/reconcile`: the orders shipped in the window with their
//! totals, for payment and notification to check; an order stuck before
//! the window's end is a counterexample; nothing else is.

use chrono::Utc;
use omnisaga_runtime::testing;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{order_body, spawn_app, TestApp};

async fn reconcile(app: &TestApp, body: &Value) -> (u16, Value) {
    testing::openapi::reconcile("order", &app.admin_url, body).await
}

async fn place(app: &TestApp) -> (String, Value) {
    let resp = app
        .post_order(Some(&Uuid::new_v4().to_string()), &order_body())
        .await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    (
        body["order_id"].as_str().unwrap().to_owned(),
        body["total"]["minor_units"].clone(),
    )
}

#[tokio::test]
async fn the_window_lists_its_shipped_orders_and_an_order_stuck_before_its_end() {
    let app = spawn_app().await;
    let (shipped, total) = place(&app).await;
    let (stuck, _) = place(&app).await;
    let (_fresh, _) = place(&app).await;
    // As the saga would leave them: one shipped a minute ago, one PAID
    // and unchanged for two hours (beyond ORDER_STUCK_AFTER_MS).
    for (id, status, age) in [(&shipped, "SHIPPED", "1 minute"), (&stuck, "PAID", "2 hours")] {
        sqlx::query(&format!(
            "UPDATE order_view SET status = $2, updated_at = now() - interval '{age}' WHERE order_id = $1::uuid"
        ))
        .bind(id)
        .bind(status)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    app.outbox_published().await;

    let window = json!({
        "since": (Utc::now() - chrono::Duration::hours(1)).to_rfc3339(),
        "until": Utc::now().to_rfc3339(),
    });
    let (status, report) = reconcile(&app, &window).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["shipped"],
        json!([{"order_id": shipped, "total_minor": total}])
    );
    assert_eq!(report["truncated"], false);
    let found: Vec<(&str, &str)> = report["counterexamples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["invariant"].as_str().unwrap(), c["order_id"].as_str().unwrap()))
        .collect();
    assert_eq!(found, [("nothing_stuck", stuck.as_str())], "{report}");
    assert_eq!(report["checked"]["nothing_stuck"], 2, "{report}");

    let backwards = json!({"since": window["until"], "until": window["since"]});
    let (status, refused) = reconcile(&app, &backwards).await;
    assert_eq!(status, 422, "{refused}");
}
