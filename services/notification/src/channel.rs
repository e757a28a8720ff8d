//! Delivery channels. The default writes the message to the log; with
//! `NOTIFICATION_WEBHOOK_URL` set, messages are POSTed to it, signed
//! ([`crate::webhook`]); a chat gateway would be another implementation of
//! [`Channel`].

use async_trait::async_trait;

/// A message to one customer.
#[derive(Debug, Clone)]
pub struct Message {
    pub notification_id: uuid::Uuid,
    pub order_id: uuid::Uuid,
    pub customer_id: String,
    /// Which message it is: `confirmed`, `shipped`, ...
    pub template: String,
    pub text: String,
}

#[async_trait]
pub trait Channel: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Delivers `msg`. May be called again for the same notification id after
    /// a crash, so a real gateway should dedupe on it.
    async fn send(&self, msg: &Message) -> anyhow::Result<()>;
}

pub struct LogChannel;

#[async_trait]
impl Channel for LogChannel {
    fn name(&self) -> &'static str {
        "log"
    }
    async fn send(&self, msg: &Message) -> anyhow::Result<()> {
        tracing::info!(notification.id = %msg.notification_id, text = %msg.text, "chat message sent");
        Ok(())
    }
}
