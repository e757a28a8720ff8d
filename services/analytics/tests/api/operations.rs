//! What every service answers besides its own API, checked on analytics,
//! whose own API is one read: probes, metrics, consumer progress and the
//! error envelope of a request nothing answers.

use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_probes_say_alive_and_ready_with_the_database_and_broker_up() {
    let app = spawn_app().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap(), json!({"status": "ready"}));
}

#[tokio::test]
async fn metrics_count_the_summary_requests_by_route() {
    let app = spawn_app().await;
    app.summary().await;
    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("http_server_requests_total")
            && l.contains(r#"route="/v1/summary""#)
            && l.contains(r#"status="200""#)),
        "{text}"
    );
    assert!(text.contains("omnisaga_outbox_backlog"), "{text}");
}

#[tokio::test]
async fn the_consumer_reports_its_group() {
    let app = spawn_app().await;
    let body: Value = app.get("/v1/admin/consumers").await.json().await.unwrap();
    let consumers = body["consumers"].as_array().expect("consumers");
    assert_eq!(consumers.len(), 1, "{body}");
    assert_eq!(consumers[0]["name"], "analytics");
    assert_eq!(
        consumers[0]["group"],
        format!("{}analytics", app.kafka.topic_prefix)
    );
}

#[tokio::test]
async fn an_unknown_route_gets_the_error_envelope_with_the_request_id() {
    let app = spawn_app().await;
    let resp = app.get("/v1/summaries").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-request-id"], "test-request");
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"code": "not_found", "message": "no such route", "request_id": "test-request"})
    );
}
