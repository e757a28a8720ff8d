//! `GET /v1/pick-tasks/backlog`: the pick tasks not yet shipped, per status.

use std::time::Duration;

use omnisaga_runtime::testing;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn an_empty_backlog_names_every_status_at_zero() {
    let app = spawn_app().await;
    assert_eq!(
        app.get_json("/v1/pick-tasks/backlog").await,
        json!({"total": 0, "by_status": {"WAITING_PAYMENT": 0, "READY": 0, "PACKED": 0}})
    );
}

#[tokio::test]
async fn a_reserved_order_waits_for_payment_in_the_backlog() {
    let app = spawn_app().await;
    app.place_order("SKU-MUG", 1).await;
    let backlog = testing::wait_for("a pick task to be queued", Duration::from_secs(30), || async {
        let backlog = app.get_json("/v1/pick-tasks/backlog").await;
        (backlog["total"] != 0).then_some(backlog)
    })
    .await
    .unwrap();
    assert_eq!(
        backlog,
        json!({"total": 1, "by_status": {"WAITING_PAYMENT": 1, "READY": 0, "PACKED": 0}})
    );
}
