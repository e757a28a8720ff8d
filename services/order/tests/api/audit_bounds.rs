//! What the audit log cannot be made to store: a body the route refuses,
//! more than an excerpt of any body, calls a limit or the router refused,
//! or an unbounded stream of failed authentications.

use omnisaga_runtime::testing;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::{order_body, spawn_app, spawn_app_with};

/// Every entry: (subject, status, outcome, payload, body_bytes, body_sha256,
/// the payload's size in bytes), oldest first.
async fn entries(
    pool: &PgPool,
) -> Vec<(
    String,
    i32,
    String,
    Option<Value>,
    i64,
    Option<String>,
    Option<i32>,
)> {
    sqlx::query_as(
        "SELECT subject, status, outcome, payload, body_bytes, body_sha256, octet_length(payload::text)
         FROM audit_log ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_body_too_large_is_not_stored_and_a_large_one_keeps_only_an_excerpt_its_size_and_hash() {
    let app = spawn_app().await;
    let huge = json!({ "channel": "mobile", "note": "x".repeat(3_500_000) }).to_string();
    let refused = app
        .http
        .post(format!("{}/v1/orders", app.url))
        .header("content-type", "application/json")
        .header("idempotency-key", "k-huge")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 413);
    assert!(
        entries(&app.pool).await.is_empty(),
        "a refused body is counted, not stored"
    );

    let mut body = order_body();
    body["note"] = json!("y".repeat(40 * 1024));
    let text = body.to_string();
    let answered = app
        .http
        .post(format!("{}/v1/orders", app.url))
        .header("content-type", "application/json")
        .header("idempotency-key", "k-large")
        .body(text.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), 422, "an unknown field");
    let kept = entries(&app.pool).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    let (_, status, outcome, payload, bytes, sha, size) = &kept[0];
    assert_eq!((*status, outcome.as_str()), (422, "unknown_field"));
    assert_eq!(*bytes, text.len() as i64);
    let expected: String = sqlx::query_scalar("SELECT encode(sha256($1::bytea), 'hex')")
        .bind(text.as_bytes())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sha.as_deref(), Some(expected.as_str()));
    let payload = payload.as_ref().unwrap();
    assert_eq!(payload["truncated"], true, "{payload}");
    assert!(size.unwrap() <= 8 * 1024 + 64, "{size:?}");
    let excerpt = payload["excerpt"].as_str().unwrap();
    assert!(
        !excerpt.contains("Ada Lovelace") && !excerpt.contains("tok_visa"),
        "{excerpt}"
    );
}

#[tokio::test]
async fn calls_refused_before_a_handler_ran_are_not_stored() {
    let app = spawn_app_with(|c| {
        c.limits.rate_per_second = 0.01;
        c.limits.burst = 2.0;
    })
    .await;
    let mut statuses = Vec::new();
    for n in 0..3 {
        let resp = app.post_order(Some(&format!("k-{n}")), &order_body()).await;
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, [201, 201, 429]);
    // Another customer, whose bucket is full.
    let other = app.as_caller(&testing::auth::customer_token("cust-other"));
    let wrong_method = other.put(format!("{}/v1/orders", app.url)).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    let no_route = other
        .post(format!("{}/v1/nowhere", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(no_route.status(), 404);
    let kept: Vec<i32> = entries(&app.pool).await.into_iter().map(|e| e.1).collect();
    assert_eq!(kept, [201, 201], "only the calls a handler answered");
}

#[tokio::test]
async fn failed_authentications_are_audited_with_their_reason_up_to_a_bound_per_client() {
    let app = spawn_app().await;
    let forger = app.as_caller("not.a.token");
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (forger, url) = (forger.clone(), format!("{}/v1/orders", app.url));
        calls.spawn(async move {
            forger
                .post(url)
                .json(&order_body())
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    while let Some(status) = calls.join_next().await {
        assert_eq!(status.unwrap(), 401);
    }
    let kept = entries(&app.pool).await;
    assert!(
        (10..=11).contains(&kept.len()),
        "at most the burst (and what refilled): {}",
        kept.len()
    );
    for (subject, status, outcome, payload, ..) in &kept {
        assert_eq!(
            (subject.as_str(), *status, outcome.as_str()),
            ("-", 401, "unauthorized")
        );
        let payload = payload.as_ref().unwrap();
        assert!(
            payload["reason"].as_str().unwrap().contains("well-formed"),
            "{payload}"
        );
        assert_eq!(payload["client"], "127.0.0.1");
        assert!(
            !payload.to_string().contains("not.a.token"),
            "the token is never kept"
        );
    }
}
