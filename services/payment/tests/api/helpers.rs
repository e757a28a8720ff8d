//! `spawn_app`: the payment service on the runtime's test base
//! (`testing::TestApp`: the test configuration, a client, its database and
//! topics) and a provider that approves every card, plus what the tests
//! send it. Every route of the payment service is an operator's: on the
//! admin listener (`admin_get`).

use std::{ops::Deref, sync::Arc};

use omnisaga_payment::{app::App, config::Config, provider::Provider};
use omnisaga_proto::v1::{envelope::Payload, Money, OrderPlaced};
use omnisaga_runtime::testing;
pub use omnisaga_runtime::testing::assert_error;
use uuid::Uuid;

pub struct TestApp {
    base: testing::TestApp,
    /// The provider the running service calls: what its outage switch sets.
    pub provider: Arc<Provider>,
}

impl Deref for TestApp {
    type Target = testing::TestApp;
    fn deref(&self) -> &testing::TestApp {
        &self.base
    }
}

pub async fn spawn_app() -> TestApp {
    let common = testing::config("payment").await.expect("test configuration");
    let app = App::build(Config::with_common(common.clone()))
        .await
        .expect("payment service starts");
    let provider = app.provider.clone();
    let base = testing::TestApp::start(
        &common,
        (app.port(), app.admin_port()),
        &testing::auth::admin_token(),
        |stop| app.run_until_stopped(stop),
    );
    TestApp { base, provider }
}

impl TestApp {
    /// `PUT /v1/admin/provider` with `body` sent as is, of `content_type`.
    pub async fn put_provider(&self, content_type: Option<&str>, body: &str) -> reqwest::Response {
        let mut req = self
            .http
            .put(format!("{}/v1/admin/provider", self.admin_url))
            .body(body.to_owned());
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        self.send(req).await
    }

    /// Places an order of `minor_units` EUR as the order service would, on
    /// the orders topic the service consumes; returns the order's id.
    pub async fn place_order(&self, minor_units: i64) -> Uuid {
        self.place_order_paying(minor_units, "tok_visa").await
    }

    /// [`Self::place_order`], paid with card `token` (see the provider
    /// simulator's tokens).
    pub async fn place_order_paying(&self, minor_units: i64, token: &str) -> Uuid {
        let order_id = Uuid::new_v4();
        let placed = Payload::OrderPlaced(OrderPlaced {
            order_id: order_id.to_string(),
            total: Some(Money {
                minor_units,
                currency: "EUR".into(),
            }),
            payment_method_token: token.into(),
            ..Default::default()
        });
        self.publish_as("order", &self.kafka.topics().orders, order_id, placed)
            .await;
        order_id
    }
}
