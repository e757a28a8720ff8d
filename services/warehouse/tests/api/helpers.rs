//! `spawn_app`: the warehouse with the runtime's test configuration
//! (`testing::config`: port 0, a fresh database, its own topic prefix) and
//! the seed catalog's stock, plus what the tests send it.

use std::path::Path;

use omnisaga_proto::v1::{envelope::Payload, LineItem, OrderPlaced, PaymentAuthorized};
use omnisaga_runtime::{config::KafkaConfig, testing};
use omnisaga_warehouse::{app::App, config::Config};
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

pub struct TestApp {
    pub url: String,
    /// The admin listener's base URL: the internal and admin routes.
    pub admin_url: String,
    pub http: reqwest::Client,
    pub pool: PgPool,
    kafka: KafkaConfig,
    /// Stops the service when the test drops its app.
    _stop: DropGuard,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The warehouse with the test configuration as `change` leaves it.
pub async fn spawn_app_with(change: impl FnOnce(&mut Config)) -> TestApp {
    let common = testing::config("warehouse").await.expect("test configuration");
    let kafka = common.kafka.clone();
    let mut config = Config::with_common(common);
    change(&mut config);
    config.seed_file = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/seed/catalog.json"));
    let app = App::build(config).await.expect("warehouse starts");
    let url = format!("http://127.0.0.1:{}", app.port());
    let admin_url = format!("http://127.0.0.1:{}", app.admin_port());
    let pool = app.pool();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        url,
        admin_url,
        http: testing::auth::client_with(&testing::auth::operator_token(&[omnisaga_auth::Scope::StockRead])),
        pool,
        kafka,
        _stop: shutdown.drop_guard(),
    }
}

impl TestApp {
    /// `GET path` of the admin listener (every route of the warehouse is
    /// an operator's or a service's), its body as JSON once the answer is a 200.
    pub async fn get_json(&self, path: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.admin_url))
            .send()
            .await
            .expect("request sent");
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.expect("a JSON body")
    }

    /// The stock line of `sku` in `GET /v1/stock`.
    pub async fn stock_of(&self, sku: &str) -> Value {
        let stock = self.get_json("/v1/stock").await;
        stock["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["sku"] == sku)
            .cloned()
            .unwrap_or_else(|| panic!("{sku} is not stocked: {stock}"))
    }

    /// The types of the events the warehouse recorded for `order_id`, in order.
    pub async fn events_of(&self, order_id: Uuid) -> Vec<String> {
        sqlx::query_scalar("SELECT event_type FROM events WHERE order_id = $1 ORDER BY global_position")
            .bind(order_id.to_string())
            .fetch_all(&self.pool)
            .await
            .expect("events read")
    }

    /// Places an order of `quantity` of `sku` as the order service would, on
    /// the orders topic the warehouse consumes; returns the order's id.
    pub async fn place_order(&self, sku: &str, quantity: u32) -> Uuid {
        let order_id = Uuid::new_v4();
        let placed = Payload::OrderPlaced(OrderPlaced {
            order_id: order_id.to_string(),
            items: vec![LineItem {
                sku: sku.into(),
                quantity,
                ..Default::default()
            }],
            ..Default::default()
        });
        let envelope = testing::envelope("order", &order_id.to_string(), placed);
        testing::publish(&self.kafka, &self.kafka.topics().orders, &envelope)
            .await
            .expect("OrderPlaced published");
        order_id
    }

    /// Pays `order_id` as the payment service would, on the payments topic.
    pub async fn pay(&self, order_id: Uuid) {
        let paid = Payload::PaymentAuthorized(PaymentAuthorized {
            order_id: order_id.to_string(),
            ..Default::default()
        });
        let envelope = testing::envelope("payment", &order_id.to_string(), paid);
        testing::publish(&self.kafka, &self.kafka.topics().payments, &envelope)
            .await
            .expect("PaymentAuthorized published");
    }

    /// The status of `order_id`'s pick task, once it has one.
    pub async fn task_status(&self, order_id: Uuid) -> Option<String> {
        sqlx::query_scalar("SELECT status FROM pick_tasks WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&self.pool)
            .await
            .expect("pick task read")
    }
}
