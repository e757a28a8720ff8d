//! Payment asks an order service that serves HTTPS only, its certificate
//! issued by a CA the test made: trusting that CA (`TLS_CA_FILE`) it gets
//! the payment method; with the system's CAs alone the certificate is
//! refused. A `TLS_CA_FILE` that is not there stops the service at start,
//! saying which setting and which file.

use std::{process::Stdio, time::Duration};

use axum::{extract::Path, http::HeaderMap, Json};
use omnisaga_payment::orders::OrderService;
use omnisaga_runtime::{http_client::Trust, testing::https::TestCa};
use serde_json::{json, Value};
use uuid::Uuid;

/// The order service's internal route, answering for any order and attempt.
async fn payment_method(Path((order_id, attempt)): Path<(Uuid, u32)>, headers: HeaderMap) -> Json<Value> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Json(json!({ "payment_method": format!("tok-{order_id}-{attempt}"), "bearer": bearer }))
}

#[tokio::test]
async fn payment_gets_the_payment_method_from_an_order_service_that_serves_https_only() {
    let ca = TestCa::new().unwrap();
    let app = axum::Router::new().route(
        "/v1/internal/orders/{order_id}/payment-methods/{attempt}",
        axum::routing::get(payment_method),
    );
    let url = ca.serve(app).await.unwrap();
    assert!(url.starts_with("https://"), "{url}");
    let order_id = Uuid::new_v4();

    let trust = Trust::ca_file(&ca.ca_file).unwrap();
    let orders = OrderService::new(url.clone(), Some("payment-token".into()), &trust).unwrap();
    assert_eq!(
        orders.payment_method(order_id, 2).await.unwrap(),
        Some(format!("tok-{order_id}-2"))
    );

    let untrusting = OrderService::new(url.clone(), None, &Trust::system()).unwrap();
    let e = format!("{:#}", untrusting.payment_method(order_id, 2).await.unwrap_err());
    assert!(e.contains("certificate"), "{e}");

    // Plain HTTP to the HTTPS port gets no payment method either.
    let plain = OrderService::new(url.replace("https://", "http://"), None, &trust).unwrap();
    assert!(plain.payment_method(order_id, 2).await.is_err());
}

#[tokio::test]
async fn a_missing_ca_file_stops_the_service_at_start_naming_the_setting_and_the_file() {
    let missing = std::env::temp_dir().join(format!("omnisaga-no-ca-{}.pem", Uuid::new_v4().simple()));
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_payment"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TLS_CA_FILE", &missing)
        // Every other setting it needs, so the CA file is what stops it
        // (nothing is reached: the settings are checked first).
        .env("DATABASE_URL", "postgres://omnisaga@127.0.0.1:1/payment")
        .env("LOG_FORMAT", "pretty")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the service stopped at once")
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("TLS_CA_FILE={}", missing.display())) && stderr.contains("cannot be read"),
        "{stderr}"
    );
}
