//! `spawn_app`: the payment service with the runtime's test configuration
//! (`testing::config`: port 0, a fresh database, its own topic prefix) and a
//! provider that approves every card, plus what the tests send it.

use std::sync::Arc;

use omnisaga_payment::{app::App, config::Config, provider::Provider};
use omnisaga_proto::v1::{envelope::Payload, Money, OrderPlaced};
use omnisaga_runtime::{config::KafkaConfig, testing};
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

pub struct TestApp {
    pub url: String,
    /// The admin listener's base URL: the internal and admin routes.
    pub admin_url: String,
    pub http: reqwest::Client,
    /// The provider the running service calls: what its outage switch sets.
    pub provider: Arc<Provider>,
    /// The service's database, as the service reaches it.
    pub pool: PgPool,
    kafka: KafkaConfig,
    /// Stops the service when the test drops its app.
    _stop: DropGuard,
}

pub async fn spawn_app() -> TestApp {
    let common = testing::config("payment").await.expect("test configuration");
    let kafka = common.kafka.clone();
    let pool = PgPool::connect_lazy(&common.database_url).expect("the database URL");
    let app = App::build(Config::with_common(common))
        .await
        .expect("payment service starts");
    let url = format!("http://127.0.0.1:{}", app.port());
    let admin_url = format!("http://127.0.0.1:{}", app.admin_port());
    let provider = app.provider.clone();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        url,
        admin_url,
        http: testing::auth::client_with(&testing::auth::admin_token()),
        provider,
        pool,
        kafka,
        _stop: shutdown.drop_guard(),
    }
}

impl TestApp {
    /// `GET path` of the admin listener (every route of the payment
    /// service is an operator's).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.admin_url))
            .header("X-Request-Id", "test-request")
            .send()
            .await
            .expect("request sent")
    }

    /// `PUT /v1/admin/provider` with `body` sent as is, of `content_type`.
    pub async fn put_provider(&self, content_type: Option<&str>, body: &str) -> reqwest::Response {
        let mut req = self
            .http
            .put(format!("{}/v1/admin/provider", self.admin_url))
            .header("X-Request-Id", "test-request")
            .body(body.to_owned());
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        req.send().await.expect("request sent")
    }

    /// Places an order of `minor_units` EUR as the order service would, on
    /// the orders topic the service consumes; returns the order's id.
    pub async fn place_order(&self, minor_units: i64) -> Uuid {
        let order_id = Uuid::new_v4();
        let placed = Payload::OrderPlaced(OrderPlaced {
            order_id: order_id.to_string(),
            total: Some(Money {
                minor_units,
                currency: "EUR".into(),
            }),
            payment_method_token: "tok_visa".into(),
            ..Default::default()
        });
        let envelope = testing::envelope("order", &order_id.to_string(), placed);
        testing::publish(&self.kafka, &self.kafka.topics().orders, &envelope)
            .await
            .expect("OrderPlaced published");
        order_id
    }
}

/// Asserts `resp` is the error envelope with `status` and `code`, carrying
/// the request id the tests send.
pub async fn assert_error(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status(), status);
    let body: Value = resp.json().await.expect("a JSON error body");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["request_id"], "test-request", "{body}");
    assert!(!body["message"].as_str().unwrap_or("").is_empty(), "{body}");
    body
}
