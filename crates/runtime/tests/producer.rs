//! A Kafka producer's fatal error (an idempotent producer refuses every
//! record after one) is recovered from: the relay replaces the producer,
//! counts it, and `/healthz` says so, against the real broker.

use std::{collections::BTreeMap, time::Duration};

use anyhow::Result;
use axum::{body::Body, http::Request};
use omnisaga_runtime::{db, health, kafka, outbox, relay::Relay, testing, work::OutboxWaker};
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

async fn publish_one(pool: &PgPool, waker: &OutboxWaker, topic: &str, key: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    outbox::enqueue_raw(&mut tx, topic, key, key.as_bytes(), &BTreeMap::new()).await?;
    tx.commit().await?;
    waker.wake();
    testing::wait_for(&format!("{key} published"), Duration::from_secs(30), || async {
        (outbox::backlog(pool).await.ok()? == 0).then_some(())
    })
    .await
}

#[tokio::test]
async fn a_producer_with_a_fatal_error_is_replaced_and_healthz_says_so() -> Result<()> {
    let url = testing::fresh_database("producer").await?;
    let pool = db::connect(&url, 4).await?;
    db::migrate(&pool, sqlx::migrate!("./tests/migrations")).await?;
    let kafka = testing::fresh_kafka()?;
    kafka::ensure_topics(&kafka).await?;
    let topic = kafka.topics().orders;
    let producer = kafka::producer(&kafka, "fatal")?;
    let (waker, token) = (OutboxWaker::default(), CancellationToken::new());
    let relay = Relay {
        pool: pool.clone(),
        producer: producer.clone(),
        waker: waker.clone(),
        poll: Duration::from_millis(200),
        batch: 100,
        lock_key: 11,
        inbox_retention: Duration::from_secs(3600),
    };
    let running = tokio::spawn(relay.run(token.clone()));
    publish_one(&pool, &waker, &topic, "before").await?;

    // The broker breaks the producer's sequence: it refuses everything now.
    producer.with_client(|client| omnisaga_kafka_admin::raise_fatal_error(client, "broken by the test"))?;
    publish_one(&pool, &waker, &topic, "after").await?;

    let health = producer.health();
    assert_eq!(health.recreated, 1, "{health:?}");
    assert_eq!(health.broken, None);
    let resp = health::health_routes(health::Readiness::new(pool, &kafka)?.with_producer(producer))
        .oneshot(Request::get("/healthz").body(Body::empty())?)
        .await?;
    assert_eq!(resp.status(), 200);
    let body: Value = serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), 1 << 16).await?)?;
    let said = body["producer"].as_str().unwrap_or_default();
    assert!(
        said.contains("replaced 1 time") && said.contains("broken by the test"),
        "{body}"
    );
    testing::openapi::check_response("order", "get", "/healthz", 200, &body)?;
    token.cancel();
    running.await??;
    Ok(())
}
