//! `GET /v1/payments/{order_id}`: what support sees of an order's payment.

use std::time::Duration;

use omnisaga_runtime::testing;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn a_payment_nobody_made_is_not_found_in_the_error_envelope() {
    let app = spawn_app().await;
    let unknown = app.admin_get(&format!("/v1/payments/{}", Uuid::new_v4())).await;
    assert_error(unknown, 404, "not_found").await;
    // An id that cannot be an order's is no payment either, not a 500.
    assert_error(app.admin_get("/v1/payments/not-a-uuid").await, 404, "not_found").await;
}

#[tokio::test]
async fn a_placed_order_is_authorised_and_support_sees_the_payment() {
    let app = spawn_app().await;
    let order_id = app.place_order(1999).await;

    let payment: Value = testing::wait_for("the payment to be recorded", Duration::from_secs(30), || async {
        let resp = app.admin_get(&format!("/v1/payments/{order_id}")).await;
        if resp.status() == 200 {
            resp.json().await.ok()
        } else {
            None
        }
    })
    .await
    .unwrap();
    assert_eq!(
        payment,
        json!({
            "order_id": order_id,
            "status": "AUTHORIZED",
            "attempts": 1,
            "amount": {"minor_units": 1999, "currency": "EUR"},
        })
    );
    assert!(
        app.provider.holds(&format!("pay-{order_id}-1")).await.unwrap(),
        "the provider holds the money"
    );
}
