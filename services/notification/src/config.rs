//! Configuration of the notification service: the settings every service
//! shares (`omnisaga_runtime::config`, see the README's table) and how it
//! treats a message the channel refuses ([`RetryPolicy`]). Its consumer
//! fetches what 100 ms gather (`Fetch::Batched`): it follows the saga and is
//! never on an order's critical path.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HTTP_ADDR` | `127.0.0.1:8083` | API, health and metrics listen address |
//! | `ADMIN_HTTP_ADDR` | `127.0.0.1:8183` | the admin and internal routes' listen address (`HTTP_ADDR`'s port + 100) |
//! | `NOTIFICATION_MAX_ATTEMPTS` | `8` | sends of one message the channel may refuse before it is dead (kept, listed by `GET /v1/admin/messages/dead`, retried by an operator) |
//! | `NOTIFICATION_RETRY_BASE_MS` | `5000` | wait after a message's first refusal; it doubles after each refusal |
//! | `NOTIFICATION_SEND_TIMEOUT_MS` | `10000` | longest the channel may take to answer one send; past it the send counts as refused (a hanging channel holds nothing back for longer) |
//! | `NOTIFICATION_RETRY_CAP_MS` | `600000` | longest wait between two sends of one message (each wait is drawn between half and all of the doubled one) |
//! | `NOTIFICATION_WEBHOOK_URL` | unset (the log channel) | messages are POSTed there as JSON, signed ([`crate::webhook`]) |
//! | `NOTIFICATION_WEBHOOK_SECRET` (or `_FILE`) | none | the signing secrets, `whsec_` and base64 of 24 to 64 bytes: one, or two (space or comma between) while one is rotated out; needed with the URL |

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use omnisaga_runtime::config::{parse_or, var, CommonConfig, Fetch};

use crate::{
    domain::RetryPolicy,
    webhook::{self, Secret},
};

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// What becomes of a refused message (`NOTIFICATION_MAX_ATTEMPTS`,
    /// `NOTIFICATION_RETRY_BASE_MS`, `NOTIFICATION_RETRY_CAP_MS`).
    pub retry: RetryPolicy,
    /// How long one send may take (`NOTIFICATION_SEND_TIMEOUT_MS`).
    pub send_timeout: Duration,
    /// Where messages go, when not to the log (`NOTIFICATION_WEBHOOK_URL`,
    /// `NOTIFICATION_WEBHOOK_SECRET`).
    pub webhook: Option<Webhook>,
}

/// The webhook receiver and the secrets its requests are signed with.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: String,
    pub secrets: Vec<Secret>,
}

impl Config {
    pub fn from_env() -> Result<Self> {
        let d = RetryPolicy::default();
        let retry = RetryPolicy {
            max_attempts: parse_or("NOTIFICATION_MAX_ATTEMPTS", d.max_attempts)?,
            base: Duration::from_millis(parse_or("NOTIFICATION_RETRY_BASE_MS", d.base.as_millis() as u64)?),
            cap: Duration::from_millis(parse_or("NOTIFICATION_RETRY_CAP_MS", d.cap.as_millis() as u64)?),
        };
        ensure!(
            retry.max_attempts >= 1,
            "NOTIFICATION_MAX_ATTEMPTS must be at least 1"
        );
        ensure!(
            !retry.base.is_zero(),
            "NOTIFICATION_RETRY_BASE_MS must be at least 1"
        );
        ensure!(
            retry.cap >= retry.base,
            "NOTIFICATION_RETRY_CAP_MS must be at least NOTIFICATION_RETRY_BASE_MS"
        );
        let send_timeout = Duration::from_millis(parse_or("NOTIFICATION_SEND_TIMEOUT_MS", 10_000u64)?);
        ensure!(
            !send_timeout.is_zero(),
            "NOTIFICATION_SEND_TIMEOUT_MS must be at least 1"
        );
        let webhook = match var("NOTIFICATION_WEBHOOK_URL")?.filter(|u| !u.trim().is_empty()) {
            None => None,
            Some(url) => {
                let secrets = var("NOTIFICATION_WEBHOOK_SECRET")?.context(
                    "NOTIFICATION_WEBHOOK_URL is set without NOTIFICATION_WEBHOOK_SECRET (or _FILE): requests must be signed",
                )?;
                Some(Webhook {
                    url: url.trim().to_owned(),
                    secrets: webhook::secrets(&secrets).context("NOTIFICATION_WEBHOOK_SECRET")?,
                })
            }
        };
        Ok(Self {
            common: CommonConfig::from_env_with("notification", 8083, Fetch::Batched)?,
            retry,
            send_timeout,
            webhook,
        })
    }

    /// The service with `common` settings and the default retry policy, as
    /// the tests start it (they change `retry` to waits of milliseconds).
    pub fn with_common(common: CommonConfig) -> Self {
        Self {
            common,
            retry: RetryPolicy::default(),
            send_timeout: Duration::from_secs(10),
            webhook: None,
        }
    }
}
