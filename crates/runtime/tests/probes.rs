//! `/readyz` means "can serve my API": the database answers. A broker that
//! does not is reported beside it, and the service stays in its load
//! balancer, since the outbox keeps what the API accepts meanwhile.

use std::time::Duration;

use anyhow::Result;
use axum::{body::Body, http::Request};
use omnisaga_runtime::{db, health, testing};
use serde_json::Value;
use tower::ServiceExt as _;

async fn readyz(readiness: &health::Readiness) -> Result<(u16, Value)> {
    let resp = health::health_routes(readiness.clone())
        .oneshot(Request::get("/readyz").body(Body::empty())?)
        .await?;
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16).await?;
    Ok((status, serde_json::from_slice(&body)?))
}

#[tokio::test]
async fn a_service_whose_broker_is_down_stays_ready_and_says_so() -> Result<()> {
    let pool = db::connect(&testing::fresh_database("probes").await?, 1).await?;
    // A broker address where nothing listens: bound, never listening.
    let down = tokio::net::TcpSocket::new_v4()?;
    down.bind("127.0.0.1:0".parse()?)?;
    let mut kafka = testing::fresh_kafka()?;
    kafka.brokers = down.local_addr()?.to_string();
    let readiness = health::Readiness::new(pool, &kafka)?;

    let (status, body) = testing::wait_for(
        "the broker's outage in /readyz",
        Duration::from_secs(20),
        || async {
            let (status, body) = readyz(&readiness).await.ok()?;
            body["broker"]
                .as_str()?
                .starts_with("unreachable")
                .then_some((status, body))
        },
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    testing::openapi::check_response("order", "get", "/readyz", status, &body)?;
    Ok(())
}

#[tokio::test]
async fn a_service_with_its_broker_up_is_ready_and_says_the_broker_is_reachable() -> Result<()> {
    let pool = db::connect(&testing::fresh_database("probes").await?, 1).await?;
    let readiness = health::Readiness::new(pool, &testing::fresh_kafka()?)?;
    let body = testing::wait_for("the broker checked", Duration::from_secs(20), || async {
        let (status, body) = readyz(&readiness).await.ok()?;
        (status == 200 && body["broker"] == "reachable").then_some(body)
    })
    .await?;
    assert_eq!(body["status"], "ready");
    Ok(())
}
