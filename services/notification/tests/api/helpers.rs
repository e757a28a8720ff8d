//! `spawn_app`: the notification service with the runtime's test
//! configuration (`testing::config`: port 0, a fresh database, its own topic
//! prefix) and its log channel (`spawn_app_with` takes another, and waits
//! of milliseconds after a refusal), plus what the tests send it.

use std::{sync::Arc, time::Duration};

use omnisaga_notification::{
    app::App,
    channel::{Channel, LogChannel},
    config::Config,
    domain::RetryPolicy,
};
use omnisaga_proto::v1::{
    envelope::Payload, Customer, OrderPlaced, OrderReadyForShipment, OrderShipped, PaymentAuthorized,
};
use omnisaga_runtime::{config::KafkaConfig, testing};
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

pub struct TestApp {
    pub url: String,
    /// The admin listener's base URL: the internal and admin routes.
    pub admin_url: String,
    pub http: reqwest::Client,
    kafka: KafkaConfig,
    /// Stops the service when the test drops its app.
    _stop: DropGuard,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Arc::new(LogChannel)).await
}

/// The service delivering through `channel`; a message it refuses is tried
/// 3 times, 5 then 10 ms apart at most, then dead.
pub async fn spawn_app_with(channel: Arc<dyn Channel>) -> TestApp {
    let config = testing::config("notification").await.expect("test configuration");
    let kafka = config.kafka.clone();
    let mut config = Config::with_common(config);
    config.retry = RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
    };
    let app = App::build(config)
        .await
        .expect("notification service starts")
        .with_channel(channel);
    let url = format!("http://127.0.0.1:{}", app.port());
    let admin_url = format!("http://127.0.0.1:{}", app.admin_port());
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        url,
        admin_url,
        http: testing::auth::client_with(&testing::auth::operator_token(&[
            omnisaga_auth::Scope::OrdersRead,
        ])),
        kafka,
        _stop: shutdown.drop_guard(),
    }
}

impl TestApp {
    /// `GET /v1/orders/{order_id}/notifications`, `order_id` as it is.
    pub async fn messages(&self, order_id: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/v1/orders/{order_id}/notifications", self.url))
            .header("X-Request-Id", "test-request")
            .send()
            .await
            .expect("request sent")
    }

    /// The deprecated `GET /v1/notifications` with `query` as it is (`order_id=...`).
    pub async fn list(&self, query: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/v1/notifications?{query}", self.url))
            .header("X-Request-Id", "test-request")
            .send()
            .await
            .expect("request sent")
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
        let envelope = testing::envelope("order", &order_id.to_string(), placed);
        testing::publish(&self.kafka, &self.kafka.topics().orders, &envelope)
            .await
            .expect("OrderPlaced published");
        order_id
    }

    /// Takes `order_id` through the rest of the saga as the payment service
    /// and the warehouse would, each step on its topic: paid, packed,
    /// shipped (the dispatcher holds shipped news until packed news is
    /// queued).
    pub async fn ship_order(&self, order_id: Uuid) {
        let id = order_id.to_string();
        let paid = Payload::PaymentAuthorized(PaymentAuthorized {
            order_id: id.clone(),
            ..Default::default()
        });
        testing::publish(
            &self.kafka,
            &self.kafka.topics().payments,
            &testing::envelope("payment", &id, paid),
        )
        .await
        .expect("PaymentAuthorized published");
        let packed = Payload::OrderReadyForShipment(OrderReadyForShipment {
            order_id: id.clone(),
            ..Default::default()
        });
        testing::publish(
            &self.kafka,
            &self.kafka.topics().warehouse,
            &testing::envelope("warehouse", &id, packed),
        )
        .await
        .expect("OrderReadyForShipment published");
        let shipped = Payload::OrderShipped(OrderShipped {
            order_id: order_id.to_string(),
            carrier: "DHL".into(),
            tracking_number: "JD0001".into(),
        });
        let envelope = testing::envelope("warehouse", &order_id.to_string(), shipped);
        testing::publish(&self.kafka, &self.kafka.topics().warehouse, &envelope)
            .await
            .expect("OrderShipped published");
    }
}
