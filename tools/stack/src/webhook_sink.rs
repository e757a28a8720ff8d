//! A chat webhook receiver for a test stack (`StackOptions::webhook_sink`):
//! the notification service POSTs every message to it
//! (`NOTIFICATION_WEBHOOK_URL`) and it counts what reached the channel,
//! per message id (`webhook-id`, the notification id, the same on every
//! attempt) and per order in the order received. It answers 204 to every
//! request and verifies no signature (the notification tests do). It lives
//! in the process that started the stack, so it outlives the services'
//! crashes and restarts, as a customer's chat gateway would.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use anyhow::{Context, Result};
use axum::{extract::State, http::HeaderMap, http::StatusCode, routing::post, Router};

/// The secret the stack's notification service signs with: `whsec_` and
/// the base64 of 30 bytes.
pub const SECRET: &str = "whsec_dGhlIGZhdWx0IHN1aXRlJ3Mgc2luayBzZWNyZXQh";

/// What reached the channel.
#[derive(Debug, Clone, Default)]
pub struct Receipts {
    /// Requests taken per message id (a receiver that dedupes on
    /// `webhook-id` shows the customer one; more than one is a resend).
    pub per_message: HashMap<String, usize>,
    /// Per order id, each request's `(message id, template)` in the order
    /// received.
    pub per_order: HashMap<String, Vec<(String, String)>>,
}

/// The running receiver.
pub struct WebhookSink {
    pub url: String,
    receipts: Arc<Mutex<Receipts>>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookSink {
    /// Listens on a free local port, on the current runtime.
    pub async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("the webhook sink's port")?;
        let url = format!("http://{}/hooks/chat", listener.local_addr()?);
        let receipts = Arc::new(Mutex::new(Receipts::default()));
        let app = Router::new()
            .route("/hooks/chat", post(receive))
            .with_state(receipts.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, receipts, task })
    }

    /// What reached the channel so far.
    pub fn receipts(&self) -> Receipts {
        self.receipts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(receipts): State<Arc<Mutex<Receipts>>>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let field = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
    let mut r = receipts.lock().unwrap_or_else(|e| e.into_inner());
    *r.per_message.entry(id.clone()).or_default() += 1;
    r.per_order
        .entry(field("order_id"))
        .or_default()
        .push((id, field("template")));
    StatusCode::NO_CONTENT
}
