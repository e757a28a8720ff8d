//! `spawn_app`: the notification service on the runtime's test base
//! (`testing::TestApp`: the test configuration, a client, its database and
//! topics) and its log channel (`spawn_app_with` takes another, and waits
//! of milliseconds after a refusal), plus what the tests send it.

use std::{ops::Deref, sync::Arc, time::Duration};

use omnisaga_notification::{
    app::App,
    channel::{Channel, LogChannel},
    config::Config,
    domain::RetryPolicy,
};
use omnisaga_proto::v1::{
    envelope::Payload, Customer, OrderPlaced, OrderReadyForShipment, OrderShipped, PaymentAuthorized,
};
use omnisaga_runtime::testing;
use uuid::Uuid;

pub struct TestApp(testing::TestApp);

impl Deref for TestApp {
    type Target = testing::TestApp;
    fn deref(&self) -> &testing::TestApp {
        &self.0
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Arc::new(LogChannel)).await
}

/// The service delivering through `channel`; a message it refuses is tried
/// 3 times, 5 then 10 ms apart at most, then dead.
pub async fn spawn_app_with(channel: Arc<dyn Channel>) -> TestApp {
    let common = testing::config("notification").await.expect("test configuration");
    let mut config = Config::with_common(common.clone());
    config.retry = RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
    };
    let app = App::build(config)
        .await
        .expect("notification service starts")
        .with_channel(channel);
    let token = testing::auth::operator_token(&[omnisaga_auth::Scope::OrdersRead]);
    TestApp(testing::TestApp::start(
        &common,
        (app.port(), app.admin_port()),
        &token,
        |stop| app.run_until_stopped(stop),
    ))
}

impl TestApp {
    /// `GET /v1/orders/{order_id}/notifications`, `order_id` as it is.
    pub async fn messages(&self, order_id: &str) -> reqwest::Response {
        self.get(&format!("/v1/orders/{order_id}/notifications")).await
    }

    /// The deprecated `GET /v1/notifications` with `query` as it is (`order_id=...`).
    pub async fn list(&self, query: &str) -> reqwest::Response {
        self.get(&format!("/v1/notifications?{query}")).await
    }

    /// Places order `number` for `customer` as the order service would, on
    /// the orders topic the service consumes; returns the order's id.
    pub async fn place_order(&self, number: &str, customer: &str) -> Uuid {
        let order_id = Uuid::new_v4();
        let placed = Payload::OrderPlaced(OrderPlaced {
            order_id: order_id.to_string(),
            order_number: number.into(),
            customer: Some(Customer {
                customer_id: customer.into(),
            }),
            ..Default::default()
        });
        self.publish_as("order", &self.kafka.topics().orders, order_id, placed)
            .await;
        order_id
    }

    /// Takes `order_id` through the rest of the saga as the payment service
    /// and the warehouse would, each step on its topic: paid, packed,
    /// shipped (the dispatcher holds shipped news until packed news is
    /// queued).
    pub async fn ship_order(&self, order_id: Uuid) {
        let id = order_id.to_string();
        let topics = self.kafka.topics();
        let paid = Payload::PaymentAuthorized(PaymentAuthorized {
            order_id: id.clone(),
            ..Default::default()
        });
        self.publish_as("payment", &topics.payments, order_id, paid).await;
        let packed = Payload::OrderReadyForShipment(OrderReadyForShipment {
            order_id: id.clone(),
            ..Default::default()
        });
        self.publish_as("warehouse", &topics.warehouse, order_id, packed)
            .await;
        let shipped = Payload::OrderShipped(OrderShipped {
            order_id: id,
            carrier: "DHL".into(),
            tracking_number: "JD0001".into(),
        });
        self.publish_as("warehouse", &topics.warehouse, order_id, shipped)
            .await;
    }
}
