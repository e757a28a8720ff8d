//! `spawn_app`: the analytics service on the runtime's test base
//! (`testing::TestApp`: the test configuration, a client, its database and
//! topics), plus the saga's events for it to count.

use std::ops::Deref;

use omnisaga_analytics::{app::App, config::Config};
use omnisaga_proto::v1::{
    envelope::Payload, Channel, Envelope, LineItem, Money, OrderPlaced, PaymentAuthorized, PaymentFailed,
};
use omnisaga_runtime::{config::CommonConfig, testing};
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

/// The service with its test settings changed by `change` first.
pub async fn spawn_app_with(change: impl FnOnce(&mut CommonConfig)) -> TestApp {
    let mut config = testing::config("analytics").await.expect("test configuration");
    change(&mut config);
    let app = App::build(Config::with_common(config.clone()))
        .await
        .expect("analytics starts");
    let token = testing::auth::operator_token(&[omnisaga_auth::Scope::AnalyticsRead]);
    TestApp(testing::TestApp::start(
        &config,
        (app.port(), app.admin_port()),
        &token,
        |stop| app.run_until_stopped(stop),
    ))
}

impl TestApp {
    /// The summary, checked against its schema in `schemas/openapi/analytics.json`.
    pub async fn summary(&self) -> Value {
        let resp = self.get("/v1/summary").await;
        assert_eq!(resp.status(), 200);
        let summary = resp.json().await.expect("a JSON summary");
        testing::openapi::check_response("analytics", "get", "/v1/summary", 200, &summary).unwrap();
        summary
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
