//! `spawn_app`: the warehouse on the runtime's test base
//! (`testing::TestApp`: the test configuration, a client, its database and
//! topics) and the seed catalog's stock, plus what the tests send it.

use std::{ops::Deref, path::Path};

use omnisaga_proto::v1::{envelope::Payload, LineItem, OrderPlaced, PaymentAuthorized};
use omnisaga_runtime::testing;
use omnisaga_warehouse::{app::App, config::Config};
use serde_json::Value;
use uuid::Uuid;

pub struct TestApp(testing::TestApp);

impl Deref for TestApp {
    type Target = testing::TestApp;
    fn deref(&self) -> &testing::TestApp {
        &self.0
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The warehouse with the test configuration as `change` leaves it.
pub async fn spawn_app_with(change: impl FnOnce(&mut Config)) -> TestApp {
    let common = testing::config("warehouse").await.expect("test configuration");
    let mut config = Config::with_common(common);
    change(&mut config);
    config.seed_file = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/seed/catalog.json"));
    let common = config.common.clone();
    let app = App::build(config).await.expect("warehouse starts");
    TestApp(testing::TestApp::start(
        &common,
        (app.port(), app.admin_port()),
        &testing::auth::operator_token(&[omnisaga_auth::Scope::StockRead, omnisaga_auth::Scope::StockImport]),
        |stop| app.run_until_stopped(stop),
    ))
}

impl TestApp {
    /// `GET path` of the admin listener (every route of the warehouse is
    /// an operator's or a service's), its body as JSON once the answer is a 200.
    pub async fn get_json(&self, path: &str) -> Value {
        let resp = self.admin_get(path).await;
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
        self.publish_as("order", &self.kafka.topics().orders, order_id, placed)
            .await;
        order_id
    }

    /// Pays `order_id` as the payment service would, on the payments topic.
    pub async fn pay(&self, order_id: Uuid) {
        let paid = Payload::PaymentAuthorized(PaymentAuthorized {
            order_id: order_id.to_string(),
            ..Default::default()
        });
        self.publish_as("payment", &self.kafka.topics().payments, order_id, paid)
            .await;
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
