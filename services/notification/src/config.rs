//! Configuration of the notification service: the settings every service
//! shares (`omnisaga_runtime::cli::CommonArgs`, see docs/configuration.md) and how it
//! treats a message the channel refuses ([`RetryPolicy`]). Its consumer
//! fetches what 100 ms gather (`Fetch::Batched`): it follows the saga and is
//! never on an order's critical path.
//!
//! Its own settings, each an environment variable with its default and
//! meaning, are below (`notification --help`, docs/configuration.md).

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use clap::Parser;
use omnisaga_runtime::{
    cli::{CommonArgs, Service, ServiceArgs},
    config::{CommonConfig, Fetch},
};

use crate::{
    domain::RetryPolicy,
    webhook::{self, Secret},
};

/// The notification service as the command line knows it.
pub const SERVICE: Service = Service {
    name: "notification",
    port: 8083,
    fetch: Fetch::Batched,
};

/// The notification service: tells customers where their orders are.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Sends of one message the channel may refuse before it is dead (kept, listed by `GET /v1/admin/messages/dead`, retried by an operator).
    #[arg(long, env = "NOTIFICATION_MAX_ATTEMPTS", value_name = "N", default_value_t = RetryPolicy::default().max_attempts)]
    pub notification_max_attempts: u32,
    /// Wait after a message's first refusal, doubling after each refusal up to `NOTIFICATION_RETRY_CAP_MS`; each wait is drawn between half and all of it (with the defaults a message is dead 5 to 11 minutes after its first refusal).
    #[arg(long, env = "NOTIFICATION_RETRY_BASE_MS", value_name = "MS", default_value_t = RetryPolicy::default().base.as_millis() as u64)]
    pub notification_retry_base_ms: u64,
    /// Longest wait between two sends of one message.
    #[arg(long, env = "NOTIFICATION_RETRY_CAP_MS", value_name = "MS", default_value_t = RetryPolicy::default().cap.as_millis() as u64)]
    pub notification_retry_cap_ms: u64,
    /// Longest the channel may take to answer one send; past it the send counts as refused (a hanging channel holds nothing back for longer).
    #[arg(
        long,
        env = "NOTIFICATION_SEND_TIMEOUT_MS",
        value_name = "MS",
        default_value_t = 10_000
    )]
    pub notification_send_timeout_ms: u64,
    /// Messages are POSTed there as JSON, signed (docs/operations.md, Webhooks). Unset: messages go to the log.
    #[arg(long, env = "NOTIFICATION_WEBHOOK_URL", value_name = "URL")]
    pub notification_webhook_url: Option<String>,
    /// The signing secrets, `whsec_` and the base64 of 24 to 64 random bytes: one, or two (space or comma between) while one is rotated out; needed with the URL.
    #[arg(long, env = "NOTIFICATION_WEBHOOK_SECRET", value_name = "SECRETS")]
    pub notification_webhook_secret: Option<String>,
}

impl ServiceArgs for Args {
    type Config = Config;

    fn common(&self) -> &CommonArgs {
        &self.common
    }

    fn into_config(self, service: &Service) -> Result<Config> {
        let retry = RetryPolicy {
            max_attempts: self.notification_max_attempts,
            base: Duration::from_millis(self.notification_retry_base_ms),
            cap: Duration::from_millis(self.notification_retry_cap_ms),
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
        let send_timeout = Duration::from_millis(self.notification_send_timeout_ms);
        ensure!(
            !send_timeout.is_zero(),
            "NOTIFICATION_SEND_TIMEOUT_MS must be at least 1"
        );
        let webhook = match self.notification_webhook_url.filter(|u| !u.trim().is_empty()) {
            None => None,
            Some(url) => {
                let secrets = self.notification_webhook_secret.context(
                    "NOTIFICATION_WEBHOOK_URL is set without NOTIFICATION_WEBHOOK_SECRET (or _FILE): requests must be signed",
                )?;
                Some(Webhook {
                    url: url.trim().to_owned(),
                    secrets: webhook::secrets(&secrets).context("NOTIFICATION_WEBHOOK_SECRET")?,
                })
            }
        };
        Ok(Config {
            common: self.common.into_config(service)?,
            retry,
            send_timeout,
            webhook,
        })
    }
}

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
    /// The configuration from the environment and the command line; exits
    /// after `--help`, `--version`, `--print-config` or a wrong value.
    pub fn load() -> Self {
        omnisaga_runtime::cli::load::<Args>(&SERVICE)
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

#[cfg(test)]
mod config_reference {
    use omnisaga_runtime::cli::reference;

    #[test]
    fn the_checked_in_configuration_reference_lists_the_settings() {
        reference::check(
            "notification",
            &reference::service::<super::Args>(&super::SERVICE),
        );
    }
}
