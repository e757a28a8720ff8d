//! A message the channel refuses until it is dead: listed for operators by
//! `GET /v1/admin/messages/dead`, queued again by
//! `POST /v1/admin/messages/{id}/retry` and then delivered; neither for
//! anyone without the `admin` scope.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use async_trait::async_trait;
use omnisaga_notification::channel::{Channel, Message};
use omnisaga_runtime::testing::{self, openapi::check_response};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{spawn_app_with, TestApp};

/// A chat gateway that refuses every message until it is told to accept.
#[derive(Default)]
struct Gateway {
    accepts: AtomicBool,
}

#[async_trait]
impl Channel for Gateway {
    fn name(&self) -> &'static str {
        "gateway"
    }
    async fn send(&self, _: &Message) -> anyhow::Result<()> {
        if self.accepts.load(Ordering::SeqCst) {
            Ok(())
        } else {
            anyhow::bail!("gateway says: recipient unreachable")
        }
    }
}

impl TestApp {
    async fn dead(&self) -> Value {
        let resp = self
            .http
            .get(format!("{}/v1/admin/messages/dead", self.admin_url))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        check_response("notification", "get", "/v1/admin/messages/dead", status, &body).unwrap();
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn retry(&self, id: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/v1/admin/messages/{id}/retry", self.admin_url))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        check_response(
            "notification",
            "post",
            "/v1/admin/messages/{id}/retry",
            status,
            &body,
        )
        .unwrap();
        (status, body)
    }

    /// The messages of `order_id`, once the first one's status is `status`.
    async fn first_message_once(&self, order_id: Uuid, status: &str) -> Value {
        testing::wait_for(
            &format!("the message to be {status}"),
            Duration::from_secs(30),
            || async {
                let body: Value = self.messages(&order_id.to_string()).await.json().await.ok()?;
                (body["items"][0]["status"] == status).then_some(body)
            },
        )
        .await
        .unwrap()
    }
}

#[tokio::test]
async fn a_message_refused_until_dead_is_listed_and_an_operator_retries_it_once_the_channel_accepts() {
    let gateway = Arc::new(Gateway::default());
    let app = spawn_app_with(gateway.clone()).await;
    let order_id = app.place_order("OS-0100", "cust-9").await;

    let listed = app.first_message_once(order_id, "DEAD").await;
    check_response(
        "notification",
        "get",
        "/v1/orders/{order_id}/notifications",
        200,
        &listed,
    )
    .unwrap();
    let dead = app.dead().await;
    let items = dead["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{dead}");
    let message = &items[0];
    assert_eq!(message["order_id"], order_id.to_string());
    assert_eq!(message["customer_id"], "cust-9");
    assert_eq!(message["template"], "order_created");
    assert_eq!(message["status"], "DEAD");
    assert_eq!(message["attempts"], 3);
    assert_eq!(message["last_error"], "gateway says: recipient unreachable");
    assert!(message["dead_at"].is_string(), "{message}");
    let id = message["notification_id"].as_str().unwrap().to_owned();

    let metrics = reqwest::get(format!("{}/metrics", app.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("omnisaga_notifications_dead_total{") && l.contains("order_created")),
        "the dead message is counted"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("omnisaga_notifications_dead{") && l.ends_with(" 1")),
        "the dead messages are gauged"
    );

    gateway.accepts.store(true, Ordering::SeqCst);
    let (status, queued) = app.retry(&id).await;
    assert_eq!(status, 200, "{queued}");
    assert_eq!(queued["notification_id"], id);
    assert_eq!(queued["status"], "QUEUED");
    assert_eq!(queued["attempts"], 0);

    let listed = app.first_message_once(order_id, "SENT").await;
    assert_eq!(listed["items"][0]["channel"], "gateway");
    assert_eq!(app.dead().await["items"], serde_json::json!([]));

    let (status, body) = app.retry(&id).await;
    assert_eq!(status, 409, "a sent message is not retried: {body}");
    assert_eq!(body["code"], "message_not_dead");
    let (status, body) = app.retry(&Uuid::new_v4().to_string()).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["message"], "no such message");
    let (status, body) = app.retry("OS-0100").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "validation_failed");
}

#[tokio::test]
async fn only_an_operator_lists_or_retries_dead_messages() {
    let app = spawn_app_with(Arc::new(Gateway::default())).await;
    let id = Uuid::new_v4();
    for token in [
        testing::auth::customer_token("cust-9"),
        testing::auth::token("analyst", &[omnisaga_auth::Scope::AnalyticsRead]),
    ] {
        let client = testing::auth::client_with(&token);
        let list = client
            .get(format!("{}/v1/admin/messages/dead", app.admin_url))
            .send()
            .await
            .unwrap();
        assert_eq!(list.status(), 403);
        let body: Value = list.json().await.unwrap();
        check_response("notification", "get", "/v1/admin/messages/dead", 403, &body).unwrap();
        let retry = client
            .post(format!("{}/v1/admin/messages/{id}/retry", app.admin_url))
            .send()
            .await
            .unwrap();
        assert_eq!(retry.status(), 403);
        assert_eq!(retry.json::<Value>().await.unwrap()["code"], "forbidden");
    }
    let anonymous = reqwest::Client::new()
        .get(format!("{}/v1/admin/messages/dead", app.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn the_dead_list_takes_a_limit_between_1_and_500() {
    let app = spawn_app_with(Arc::new(Gateway::default())).await;
    for limit in ["0", "501", "ten"] {
        let resp = app
            .http
            .get(format!("{}/v1/admin/messages/dead?limit={limit}", app.admin_url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 422, "limit={limit}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["message"], "limit must be between 1 and 500");
    }
    assert_eq!(app.dead().await["items"], serde_json::json!([]));
}
