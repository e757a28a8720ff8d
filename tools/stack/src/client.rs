//! A small HTTP client of the running stack for tests and tools: place and
//! follow orders, read messages, stock and analytics, wait for conditions.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

#[derive(Clone)]
pub struct Client {
    /// Sends an operator's token (`admin`): reads every order and service.
    pub http: reqwest::Client,
    /// Signs the customers' tokens orders are placed with.
    signer: std::sync::Arc<omnisaga_auth::Signer>,
    pub order: String,
    pub payment: String,
    pub warehouse: String,
    pub notification: String,
    pub analytics: String,
    /// The admin listeners of payment and warehouse (every route of theirs).
    pub payment_admin: String,
    pub warehouse_admin: String,
}

/// A valid order body for `sku` x `quantity`, paid with `token`; `customer`
/// is who [`Client::place`] places it as (it leaves the body then).
pub fn order_body(sku: &str, quantity: u32, token: &str, customer: &str) -> Value {
    json!({
        "channel": "mobile",
        "items": [{"sku": sku, "quantity": quantity}],
        "shipping_address": {"name": "Test Customer", "line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "payment_method": token,
        "customer_id": customer,
    })
}

impl Client {
    pub fn new(stack: &crate::Stack) -> Self {
        Self {
            http: stack.admin_client(),
            signer: stack.signer.clone(),
            order: stack.url("order"),
            payment: stack.url("payment"),
            warehouse: stack.url("warehouse"),
            notification: stack.url("notification"),
            analytics: stack.url("analytics"),
            payment_admin: stack.admin_url("payment"),
            warehouse_admin: stack.admin_url("warehouse"),
        }
    }

    pub async fn get(&self, url: &str) -> Result<Value> {
        Ok(self
            .http
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Sends a JSON request; returns status and body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        key: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Value)> {
        let mut req = self.http.request(method, url).json(body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    /// A customer's token (their own orders, read and write).
    pub fn customer_token(&self, customer: &str) -> String {
        let scopes = [
            omnisaga_auth::Scope::OrdersRead,
            omnisaga_auth::Scope::OrdersWrite,
        ];
        self.signer
            .mint(customer, &scopes, Duration::from_secs(24 * 3600))
    }

    /// Places an order as the body's `customer_id` (taken out of the body:
    /// the customer is the token's subject) and returns its id; fails unless
    /// the answer is 201.
    pub async fn place(&self, body: &Value) -> Result<String> {
        let key = uuid::Uuid::new_v4().to_string();
        let (status, resp) = self.post_order(&key, body).await?;
        if status != 201 {
            bail!("placing an order answered {status}: {resp}");
        }
        Ok(resp["order_id"].as_str().context("no order_id")?.to_owned())
    }

    /// `POST /v1/orders` with `key`, as the body's `customer_id` (taken out
    /// of the body: the customer is the token's subject); status and body.
    pub async fn post_order(&self, key: &str, body: &Value) -> Result<(u16, Value)> {
        let mut body = body.clone();
        let customer = body
            .as_object_mut()
            .and_then(|b| b.remove("customer_id"))
            .and_then(|c| c.as_str().map(str::to_owned))
            .unwrap_or_else(|| "e2e-customer".into());
        let resp = self
            .http
            .post(format!("{}/v1/orders", self.order))
            .bearer_auth(self.customer_token(&customer))
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    pub async fn order(&self, id: &str) -> Result<Value> {
        self.get(&format!("{}/v1/orders/{id}", self.order)).await
    }

    /// Waits until the order has `status`; returns the order.
    pub async fn wait_status(&self, id: &str, status: &str, timeout: Duration) -> Result<Value> {
        wait_for(&format!("order {id} to be {status}"), timeout, || async {
            let o = self.order(id).await?;
            Ok((o["status"] == status).then_some(o))
        })
        .await
    }

    /// Event types of the order's timeline, in order.
    pub async fn timeline(&self, id: &str) -> Result<Vec<String>> {
        let o = self.order(id).await?;
        Ok(o["timeline"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["event_type"].as_str().map(str::to_owned))
            .collect())
    }

    /// Waits until the order's timeline holds `event_type`.
    pub async fn wait_event(&self, id: &str, event_type: &str, timeout: Duration) -> Result<Vec<String>> {
        wait_for(
            &format!("{event_type} in the timeline of {id}"),
            timeout,
            || async {
                let t = self.timeline(id).await?;
                Ok(t.iter().any(|e| e == event_type).then_some(t))
            },
        )
        .await
    }

    /// Templates of the messages sent for the order.
    pub async fn messages(&self, id: &str) -> Result<Vec<String>> {
        let body = self
            .get(&format!("{}/v1/orders/{id}/notifications", self.notification))
            .await?;
        Ok(body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["status"] == "SENT")
            .filter_map(|n| n["template"].as_str().map(str::to_owned))
            .collect())
    }

    pub async fn wait_message(&self, id: &str, template: &str, timeout: Duration) -> Result<Vec<String>> {
        wait_for(&format!("message {template} for {id}"), timeout, || async {
            let m = self.messages(id).await?;
            Ok(m.iter().any(|t| t == template).then_some(m))
        })
        .await
    }

    /// Stock of `sku`: (on hand, reserved).
    pub async fn stock(&self, sku: &str) -> Result<(i64, i64)> {
        let body = self.get(&format!("{}/v1/stock", self.warehouse_admin)).await?;
        let item = body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["sku"] == sku)
            .context("unknown sku")?;
        Ok((
            item["on_hand"].as_i64().unwrap_or(-1),
            item["reserved"].as_i64().unwrap_or(-1),
        ))
    }

    pub async fn set_provider_outage(&self, outage: bool) -> Result<()> {
        let (status, _) = self
            .send(
                reqwest::Method::PUT,
                &format!("{}/v1/admin/provider", self.payment_admin),
                None,
                &json!({"outage": outage}),
            )
            .await?;
        if status != 200 {
            bail!("outage switch answered {status}");
        }
        Ok(())
    }
}

/// Polls `check` until it returns `Ok(Some)`, failing after `timeout` with
/// the last error: the runtime's one wait loop, for checks that may fail.
pub use omnisaga_runtime::wait::try_wait_for as wait_for;
