//! `POST /v1/admin/reconcile`: stock is conserved while orders hold
//! reservations; a reservation no pick task holds is a counterexample of
//! its SKU; a window that is not one is refused.

use std::time::Duration;

use chrono::Utc;
use omnisaga_runtime::testing;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

async fn reconcile(app: &TestApp, body: &Value) -> (u16, Value) {
    testing::openapi::reconcile("warehouse", &app.admin_url, body).await
}

#[tokio::test]
async fn a_reservation_no_pick_task_holds_is_a_counterexample_of_its_sku() {
    let app = spawn_app().await;
    app.place_order("SKU-LAMP", 2).await;
    testing::wait_for("two lamps to be reserved", Duration::from_secs(30), || async {
        (app.stock_of("SKU-LAMP").await["reserved"] == 2).then_some(())
    })
    .await
    .unwrap();
    // Its events published: a row still in the outbox would be a counterexample.
    app.outbox_published().await;
    let window = json!({
        "since": (Utc::now() - chrono::Duration::hours(1)).to_rfc3339(),
        "until": Utc::now().to_rfc3339(),
    });
    let (status, clean) = reconcile(&app, &window).await;
    assert_eq!(status, 200, "{clean}");
    assert_eq!(clean["counterexamples"], json!([]), "{clean}");
    assert_eq!(clean["checked"]["stock_conserved"], 6, "{clean}");

    sqlx::query("UPDATE stock SET reserved = reserved + 1 WHERE sku = 'SKU-LAMP'")
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, found) = reconcile(&app, &window).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(
        found["counterexamples"],
        json!([{
            "invariant": "stock_conserved",
            "order_id": null,
            "subject": "SKU SKU-LAMP",
            "detail": "3 reserved, the open pick tasks hold 2",
        }])
    );

    let future = json!({
        "since": Utc::now().to_rfc3339(),
        "until": (Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
    });
    let (status, refused) = reconcile(&app, &future).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["code"], "validation_failed", "{refused}");
}
