//! The base every service's `tests/api/helpers.rs` builds on: the service
//! running in the test's process on its test configuration ([`super::config`]),
//! stopped when the test drops it, with a client sending the test's token,
//! the service's database and topics, and the requests and events every
//! service's tests send. A service's helpers keep only what is its own.

use std::future::Future;

use anyhow::Result;
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::{
    boot::config::CommonConfig,
    messaging::kafka::KafkaConfig,
    pb::{envelope::Payload, Envelope},
};

/// The request id every request of [`TestApp`] carries, and every error
/// envelope it gets back names ([`assert_error`]).
pub const REQUEST_ID: &str = "test-request";

/// A service under test, running until the test drops it.
pub struct TestApp {
    /// The public listener's base URL.
    pub url: String,
    /// The admin listener's base URL: the internal and admin routes.
    pub admin_url: String,
    /// A client sending the token the test started the service with.
    pub http: reqwest::Client,
    /// The topics' names under this test's prefix.
    pub kafka: KafkaConfig,
    /// The service's database, for what a test checks in it.
    pub pool: PgPool,
    /// Stops the service when the test drops its app.
    _stop: DropGuard,
}

impl TestApp {
    /// Runs a service built on `config` (with `run`, its `run_until_stopped`),
    /// listening on `ports` (public, admin), with a client sending `token`.
    pub fn start<Run, Fut>(config: &CommonConfig, ports: (u16, u16), token: &str, run: Run) -> Self
    where
        Run: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let pool = PgPool::connect_lazy(&config.database_url).expect("the test database's URL");
        let shutdown = CancellationToken::new();
        tokio::spawn(run(shutdown.clone()));
        Self {
            url: format!("http://127.0.0.1:{}", ports.0),
            admin_url: format!("http://127.0.0.1:{}", ports.1),
            http: super::auth::client_with(token),
            kafka: config.kafka.clone(),
            pool,
            _stop: shutdown.drop_guard(),
        }
    }

    /// `GET path` of the public listener, with the tests' request id.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.send(self.http.get(format!("{}{path}", self.url))).await
    }

    /// `GET path` of the admin listener, with the tests' request id.
    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.send(self.http.get(format!("{}{path}", self.admin_url)))
            .await
    }

    /// Sends `req` with the tests' request id.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> reqwest::Response {
        req.header("X-Request-Id", REQUEST_ID)
            .send()
            .await
            .expect("request sent")
    }

    /// Publishes `envelope` on `topic` (a name from `self.kafka.topics()`),
    /// as the service that owns the topic would.
    pub async fn publish(&self, topic: &str, envelope: &Envelope) {
        super::publish(&self.kafka, topic, envelope)
            .await
            .unwrap_or_else(|e| panic!("{} not published: {e:#}", envelope.event_type));
    }

    /// Waits until the relay published every outbox row written so far.
    pub async fn outbox_published(&self) {
        super::wait_for(
            "the outbox to be published",
            std::time::Duration::from_secs(30),
            || async {
                let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    .fetch_one(&self.pool)
                    .await
                    .ok()?;
                (left == 0).then_some(())
            },
        )
        .await
        .unwrap();
    }

    /// Publishes `payload` about `order_id` on `topic` in a new envelope, as
    /// `producer` would write it.
    pub async fn publish_as(&self, producer: &str, topic: &str, order_id: uuid::Uuid, payload: Payload) {
        self.publish(topic, &super::envelope(producer, &order_id.to_string(), payload))
            .await;
    }
}

/// Asserts `resp` is the error envelope with `status` and `code`, carrying
/// the tests' request id and a message; returns its body.
pub async fn assert_error(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status(), status);
    let body: Value = resp.json().await.expect("a JSON error body");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["request_id"], REQUEST_ID, "{body}");
    assert!(!body["message"].as_str().unwrap_or("").is_empty(), "{body}");
    body
}
