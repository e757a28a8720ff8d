//! `spawn_app`: the analytics service with the runtime's test configuration
//! (`testing::config`: port 0, a fresh database, its own topic prefix), plus
//! the saga's events for it to count.

use omnisaga_analytics::{app::App, config::Config};
use omnisaga_proto::v1::{
    envelope::Payload, Channel, Envelope, LineItem, Money, OrderPlaced, PaymentAuthorized, PaymentFailed,
};
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
    /// The topics' names under this test's prefix.
    pub kafka: KafkaConfig,
    /// The service's database, for what analysts query.
    pub db: PgPool,
    /// Stops the service when the test drops its app.
    _stop: DropGuard,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The service with its test settings changed by `change` first.
pub async fn spawn_app_with(change: impl FnOnce(&mut omnisaga_runtime::config::CommonConfig)) -> TestApp {
    let mut config = testing::config("analytics").await.expect("test configuration");
    change(&mut config);
    let kafka = config.kafka.clone();
    let db = PgPool::connect(&config.database_url)
        .await
        .expect("the test database");
    let app = App::build(Config::with_common(config))
        .await
        .expect("analytics starts");
    let url = format!("http://127.0.0.1:{}", app.port());
    let admin_url = format!("http://127.0.0.1:{}", app.admin_port());
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        url,
        admin_url,
        http: testing::auth::client_with(&testing::auth::operator_token(&[
            omnisaga_auth::Scope::AnalyticsRead,
        ])),
        kafka,
        db,
        _stop: shutdown.drop_guard(),
    }
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .header("X-Request-Id", "test-request")
            .send()
            .await
            .expect("request sent")
    }

    /// The summary, checked against its schema in `schemas/openapi/analytics.json`.
    pub async fn summary(&self) -> Value {
        let resp = self.get("/v1/summary").await;
        assert_eq!(resp.status(), 200);
        let summary = resp.json().await.expect("a JSON summary");
        testing::openapi::check_response("analytics", "get", "/v1/summary", 200, &summary).unwrap();
        summary
    }

    /// Publishes `envelope` on `topic` (a name from `self.kafka.topics()`),
    /// as its service would.
    pub async fn publish(&self, topic: &str, envelope: &Envelope) {
        testing::publish(&self.kafka, topic, envelope)
            .await
            .expect("event published");
    }

    /// An order placed, on the orders topic; returns its id.
    pub async fn place_order(&self) -> Uuid {
        let order_id = Uuid::new_v4();
        self.publish(&self.kafka.topics().orders, &placed(order_id)).await;
        order_id
    }

    /// Payment's first answer for `order_id`, on the payments topic.
    pub async fn pay(&self, order_id: Uuid, authorized: bool) {
        self.publish(&self.kafka.topics().payments, &paid(order_id, authorized))
            .await;
    }
}

/// `OrderPlaced` for `order_id` with no channel or lines.
pub fn placed(order_id: Uuid) -> Envelope {
    placed_through(order_id, Channel::Unspecified, &[])
}

/// `OrderPlaced` for `order_id` through `channel` with `lines` of (SKU,
/// quantity, unit price in cents), as the order service writes it.
pub fn placed_through(order_id: Uuid, channel: Channel, lines: &[(&str, u32, i64)]) -> Envelope {
    let eur = |minor_units| {
        Some(Money {
            minor_units,
            currency: "EUR".into(),
        })
    };
    let placed = Payload::OrderPlaced(OrderPlaced {
        order_id: order_id.to_string(),
        channel: channel.into(),
        items: lines
            .iter()
            .map(|(sku, quantity, cents)| LineItem {
                sku: sku.to_string(),
                name: format!("{sku} name"),
                quantity: *quantity,
                unit_price: eur(*cents),
            })
            .collect(),
        total: eur(lines.iter().map(|(_, q, c)| i64::from(*q) * c).sum()),
        ..Default::default()
    });
    testing::envelope("order", &order_id.to_string(), placed)
}

/// Payment's first answer for `order_id`: authorised, or declined.
pub fn paid(order_id: Uuid, authorized: bool) -> Envelope {
    let id = order_id.to_string();
    let answer = if authorized {
        Payload::PaymentAuthorized(PaymentAuthorized {
            order_id: id.clone(),
            attempt: 1,
            ..Default::default()
        })
    } else {
        Payload::PaymentFailed(PaymentFailed {
            order_id: id.clone(),
            attempt: 1,
            reason: "card_declined".into(),
            ..Default::default()
        })
    };
    testing::envelope("payment", &id, answer)
}
