//! `spawn_app`: the order service on the runtime's test base
//! (`testing::TestApp`: the test configuration, a client, its database and
//! topics) and the seed catalog, plus request builders.

use std::{ops::Deref, path::Path};

use omnisaga_order::{app::App, config::Config};
use omnisaga_runtime::{config::CommonConfig, testing};
use serde_json::{json, Value};

/// The customer whose token `TestApp::http` sends.
pub const CUSTOMER: &str = "cust-1";

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
    spawn_app_configured(|c| change(&mut c.common)).await
}

/// The service with its own settings (deadlines, say) changed by `change` first.
pub async fn spawn_app_configured(change: impl FnOnce(&mut Config)) -> TestApp {
    let common = testing::config("order").await.expect("test configuration");
    let mut config = Config::with_common(common);
    config.seed_file = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/seed/catalog.json"));
    change(&mut config);
    let common = config.common.clone();
    let app = App::build(config).await.expect("order service starts");
    TestApp(testing::TestApp::start(
        &common,
        (app.port(), app.admin_port()),
        &testing::auth::customer_token(CUSTOMER),
        |stop| app.run_until_stopped(stop),
    ))
}

pub fn order_body() -> Value {
    json!({
        "channel": "mobile",
        "items": [{"sku": "SKU-MUG", "quantity": 2}, {"sku": "SKU-TSHIRT-M", "quantity": 1}],
        "shipping_address": {"name": "Ada Lovelace", "line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "payment_method": "tok_visa"
    })
}

/// The JSON body `req` is answered with.
pub async fn json_of(req: reqwest::RequestBuilder) -> Value {
    req.send()
        .await
        .expect("request sent")
        .json()
        .await
        .expect("a JSON body")
}

impl TestApp {
    /// A client sending `token`, for requests made as someone else.
    pub fn as_caller(&self, token: &str) -> reqwest::Client {
        testing::auth::client_with(token)
    }

    pub async fn post_order(&self, key: Option<&str>, body: &Value) -> reqwest::Response {
        let mut req = self.http.post(format!("{}/v1/orders", self.url)).json(body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        req.send().await.expect("request sent")
    }

    /// Rows in the event store and the outbox: what a rejected request must not change.
    pub async fn written(&self) -> (i64, i64) {
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .unwrap();
        let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&self.pool)
            .await
            .unwrap();
        (events, outbox)
    }
}
