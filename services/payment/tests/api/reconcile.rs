//! `POST /v1/admin/reconcile`: the provider's ledger against the payment
//! streams, and a shipped order's standing authorisation of its total.

use std::time::Duration;

use chrono::Utc;
use omnisaga_runtime::testing;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

async fn reconcile(app: &TestApp, body: &Value) -> (u16, Value) {
    testing::openapi::reconcile("payment", &app.admin_url, body).await
}

#[tokio::test]
async fn a_second_approval_the_stream_never_recorded_and_a_wrong_total_are_counterexamples_of_their_order() {
    let app = spawn_app().await;
    let order_id = app.place_order(1999).await;
    testing::wait_for(
        "the payment to be recorded and published",
        Duration::from_secs(30),
        || async {
            let paid = app.admin_get(&format!("/v1/payments/{order_id}")).await.status() == 200;
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&app.pool)
                .await
                .unwrap();
            (paid && left == 0).then_some(())
        },
    )
    .await
    .unwrap();
    let since = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let window = |total: i64| {
        json!({
            "since": since,
            "until": Utc::now().to_rfc3339(),
            "shipped": [{"order_id": order_id, "total_minor": total}],
        })
    };
    let (status, clean) = reconcile(&app, &window(1999)).await;
    assert_eq!(status, 200, "{clean}");
    assert_eq!(clean["counterexamples"], json!([]), "{clean}");
    assert_eq!(clean["checked"]["ledger_matches_streams"], 1, "{clean}");
    assert_eq!(clean["checked"]["shipped_paid"], 1, "{clean}");

    sqlx::query("INSERT INTO provider_ledger (payment_id, outcome) VALUES ($1, 'APPROVED')")
        .bind(format!("pay-{order_id}-2"))
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, found) = reconcile(&app, &window(2000)).await;
    assert_eq!(status, 200, "{found}");
    let order = order_id.to_string();
    assert_eq!(
        found["counterexamples"],
        json!([
            {
                "invariant": "ledger_matches_streams",
                "order_id": order,
                "subject": format!("payment pay-{order}-2"),
                "detail": "the provider holds money for it, never recorded in the payment stream",
            },
            {
                "invariant": "ledger_matches_streams",
                "order_id": order,
                "subject": "provider ledger",
                "detail": "the provider holds 2 authorisations for one order",
            },
            {
                "invariant": "shipped_paid",
                "order_id": order,
                "subject": format!("order {order}"),
                "detail": format!("shipped on an authorisation (pay-{order}-1) of 1999, its total is 2000"),
            },
        ])
    );
}
