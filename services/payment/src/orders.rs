//! The order service as payment asks it: the payment token of an attempt,
//! which the topics every service and analyst reads do not carry
//! (`GET /v1/internal/orders/{id}/payment-methods/{attempt}`, with the
//! payment service's `payment-methods:read` token).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use omnisaga_runtime::http_client::Trust;
use serde_json::Value;
use uuid::Uuid;

/// Where the order service is and how payment proves who it is.
#[derive(Clone)]
pub struct OrderService {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl std::fmt::Debug for OrderService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderService")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The route payment asks, as the order service names it.
const PAYMENT_METHODS: &str = "/v1/internal/orders/{id}/payment-methods/{attempt}";

/// Longest a request to the order service may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

impl OrderService {
    /// The order service at `url` (`http://` or `https://`, its
    /// certificate checked against `trust`), asked with `token`.
    pub fn new(url: String, token: Option<String>, trust: &Trust) -> Result<Self> {
        let http = trust
            .builder()
            .timeout(TIMEOUT)
            .build()
            .context("Failed to build the HTTP client for the order service")?;
        Ok(Self { http, url, token })
    }

    /// The token `order_id`'s payment attempt `attempt` is to be charged
    /// with; `None` when the order service has no such order or attempt (a
    /// 404: asking again will not change that). Any other failure is an
    /// error, and the call is made again later.
    pub async fn payment_method(&self, order_id: Uuid, attempt: u32) -> Result<Option<String>> {
        let url = format!(
            "{}/v1/internal/orders/{order_id}/payment-methods/{attempt}",
            self.url
        );
        let mut req = self.http.get(&url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        // In the order's trace: the order service continues it (payment's token holds a service scope).
        let resp = omnisaga_runtime::http_client::send_traced(&self.http, req.build()?, PAYMENT_METHODS)
            .await
            .with_context(|| format!("the order service did not answer at {}", self.url))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status == reqwest::StatusCode::NOT_FOUND {
            tracing::warn!(%order_id, attempt, "the order service knows no payment method for this attempt");
            return Ok(None);
        }
        if !status.is_success() {
            bail!(
                "the order service answered {status} for the payment method of {order_id} attempt {attempt}: {}",
                body["message"].as_str().unwrap_or("")
            );
        }
        body["payment_method"]
            .as_str()
            .map(|token| Some(token.to_owned()))
            .context("the order service's answer has no payment_method")
    }
}
