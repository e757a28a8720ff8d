//! The webhook channel (the webhook pattern): each chat message is POSTed as
//! JSON to `NOTIFICATION_WEBHOOK_URL`, signed the way Standard Webhooks
//! (<https://www.standardwebhooks.com>) signs, so a receiver can use any of
//! its libraries or the few lines in docs/operations.md (Webhooks):
//!
//! - `webhook-id`: the notification id, the same on every attempt (a
//!   receiver dedupes on it);
//! - `webhook-timestamp`: when this attempt was sent, in Unix seconds (a
//!   receiver refuses one too far from its clock: replays);
//! - `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`
//!   once per active secret, separated by spaces. Two secrets are active
//!   while one is rotated out: receivers that know either accept.
//!
//! An answer other than 2xx, no answer, or one slower than
//! `NOTIFICATION_SEND_TIMEOUT_MS` is a refusal: the dispatcher tries the
//! message again after a doubling wait with jitter, and after
//! `NOTIFICATION_MAX_ATTEMPTS` it is dead while the other messages go on.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use async_trait::async_trait;
use base64::{engine::general_purpose::STANDARD, Engine as _};
use hmac::{Hmac, Mac};
use omnisaga_runtime::http_client::{describe, Trust};
use serde_json::json;
use sha2::Sha256;

use crate::channel::{Channel, Message};

/// One signing secret: `whsec_` and the base64 of 24 to 64 random bytes.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let encoded = s
            .strip_prefix("whsec_")
            .context("a webhook secret starts with whsec_")?;
        let bytes = STANDARD
            .decode(encoded)
            .context("a webhook secret is whsec_ and base64")?;
        ensure!(
            (24..=64).contains(&bytes.len()),
            "a webhook secret is 24 to 64 bytes (it is {})",
            bytes.len()
        );
        Ok(Self(bytes))
    }
}

/// The active secrets, one or two, from `text` (separated by spaces or commas).
pub fn secrets(text: &str) -> Result<Vec<Secret>> {
    let secrets = text
        .split([' ', ',', '\n'])
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse())
        .collect::<Result<Vec<Secret>>>()?;
    match secrets.len() {
        1 | 2 => Ok(secrets),
        0 => bail!("no webhook secret"),
        n => bail!("{n} webhook secrets: one is active, two while one is rotated out"),
    }
}

/// The `webhook-signature` value for `body` sent as `id` at `timestamp`.
pub fn signature(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&secret.0).expect("HMAC takes keys of any length");
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body);
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Messages POSTed to a receiver.
pub struct WebhookChannel {
    url: String,
    secrets: Vec<Secret>,
    http: reqwest::Client,
}

impl WebhookChannel {
    /// POSTs to `url`; an `https://` receiver's certificate is checked
    /// against `trust` (the system's CAs and `TLS_CA_FILE`'s).
    pub fn new(url: String, secrets: Vec<Secret>, timeout: Duration, trust: &Trust) -> Result<Self> {
        ensure!(
            url.starts_with("http://") || url.starts_with("https://"),
            "NOTIFICATION_WEBHOOK_URL must be an http:// or https:// URL"
        );
        let http = trust
            .builder()
            .timeout(timeout)
            .build()
            .context("Failed to build the webhook client")?;
        Ok(Self { url, secrets, http })
    }
}

#[async_trait]
impl Channel for WebhookChannel {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, msg: &Message) -> Result<()> {
        let body = serde_json::to_vec(&json!({
            "type": "chat.message",
            "notification_id": msg.notification_id,
            "order_id": msg.order_id,
            "customer_id": msg.customer_id,
            "template": msg.template,
            "text": msg.text,
        }))?;
        let id = msg.notification_id.to_string();
        let timestamp = omnisaga_runtime::clock::now().timestamp();
        let resp = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature(&self.secrets, &id, timestamp, &body),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("the webhook receiver did not answer: {}", describe(&e)))?;
        let status = resp.status();
        ensure!(status.is_success(), "the webhook receiver answered {status}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_the_standard_webhooks_ones() {
        // The Standard Webhooks specification's example.
        let secret: Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
        let signed = signature(
            std::slice::from_ref(&secret),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signed, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        // Two secrets while one is rotated out: a signature for each.
        let other: Secret = format!("whsec_{}", STANDARD.encode([7u8; 32])).parse().unwrap();
        let both = signature(
            &[secret, other],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], signed);
        assert_ne!(parts[1], signed);
    }

    #[test]
    fn secrets_are_checked_and_never_printed() {
        let good = format!("whsec_{}", STANDARD.encode([1u8; 32]));
        assert_eq!(secrets(&good).unwrap().len(), 1);
        assert_eq!(secrets(&format!("{good}, {good}")).unwrap().len(), 2);
        for bad in [
            String::new(),
            "secret".into(),
            "whsec_not base64!".into(),
            format!("whsec_{}", STANDARD.encode([1u8; 8])),
            format!("{good} {good} {good}"),
        ] {
            assert!(secrets(&bad).is_err(), "{bad:?} was taken");
        }
        assert_eq!(format!("{:?}", secrets(&good).unwrap()), "[Secret(***)]");
    }
}
