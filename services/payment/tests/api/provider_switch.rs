//! `PUT /v1/admin/provider`: the provider simulator's outage switch, and
//! what a bad request to it gets.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn the_outage_switch_turns_the_provider_off_and_on() {
    let app = spawn_app().await;
    let read = || async {
        app.admin_get("/v1/admin/provider")
            .await
            .json::<Value>()
            .await
            .unwrap()
    };
    assert_eq!(read().await, json!({"outage": false}));

    let on = app
        .put_provider(Some("application/json"), r#"{"outage": true}"#)
        .await;
    assert_eq!(on.status(), 200);
    assert_eq!(on.json::<Value>().await.unwrap(), json!({"outage": true}));
    assert!(
        app.provider.outage.load(Ordering::Relaxed),
        "the running provider is down"
    );
    assert_eq!(read().await, json!({"outage": true}));

    let off = app
        .put_provider(Some("application/json"), r#"{"outage": false}"#)
        .await;
    assert_eq!(off.status(), 200);
    assert!(!app.provider.outage.load(Ordering::Relaxed));
}

#[tokio::test]
async fn a_bad_switch_is_refused_in_the_error_envelope_and_changes_nothing() {
    let app = spawn_app().await;
    app.put_provider(Some("application/json"), r#"{"outage": true}"#)
        .await;

    let json = Some("application/json");
    assert_error(
        app.put_provider(json, r#"{"outage": "yes"}"#).await,
        422,
        "validation_failed",
    )
    .await;
    assert_error(app.put_provider(json, "{}").await, 422, "validation_failed").await;
    assert_error(
        app.put_provider(json, "{\"outage\": tru").await,
        400,
        "malformed_json",
    )
    .await;
    assert_error(
        app.put_provider(None, r#"{"outage": false}"#).await,
        415,
        "unsupported_media_type",
    )
    .await;

    assert!(
        app.provider.outage.load(Ordering::Relaxed),
        "no refused request turned the outage off"
    );
}
