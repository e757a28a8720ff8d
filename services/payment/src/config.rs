//! Configuration of the payment service.
//!
//! Besides the settings every service has ([`CommonArgs`]), the payment
//! service's own: each an environment variable with its default and meaning
//! below (`payment --help`, docs/configuration.md).

use std::time::Duration;

use anyhow::{ensure, Result};
use clap::Parser;
use omnisaga_runtime::{
    cli::{CommonArgs, Service, ServiceArgs},
    config::{CommonConfig, Fetch},
};

use crate::{orders::OrderService, provider::ProviderConfig};

/// The order service's local address.
const ORDER_URL: &str = "http://127.0.0.1:8180";

/// The payment service as the command line knows it.
pub const SERVICE: Service = Service {
    name: "payment",
    port: 8081,
    fetch: Fetch::Prompt,
};

/// The payment service: the saga's payment step, against a simulated provider.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Simulated provider latency, a round trip: half before the provider records its answer, half after.
    #[arg(
        long,
        env = "PAYMENT_PROVIDER_LATENCY_MS",
        value_name = "MS",
        default_value_t = 0
    )]
    pub payment_provider_latency_ms: u64,
    /// Longest one call to the provider may take; past it the call has no answer and is made again later. A caller leases its call for the order service's 5 s, five times this (three asks and two look-ups) and 5 s, and holds no transaction meanwhile.
    #[arg(
        long,
        env = "PAYMENT_PROVIDER_TIMEOUT_MS",
        value_name = "MS",
        default_value_t = 10_000
    )]
    pub payment_provider_timeout_ms: u64,
    /// Share of random declines, 0 to 1.
    #[arg(
        long,
        env = "PAYMENT_DECLINE_RATE",
        value_name = "SHARE",
        default_value_t = 0.0
    )]
    pub payment_decline_rate: f64,
    /// Share of random provider outages, 0 to 1.
    #[arg(
        long,
        env = "PAYMENT_OUTAGE_RATE",
        value_name = "SHARE",
        default_value_t = 0.0
    )]
    pub payment_outage_rate: f64,
    /// Share of first approvals the simulator records and then answers "unavailable" (charged, answer lost), 0 to 1; asked again with the same payment id it answers the approval.
    #[arg(
        long,
        env = "PAYMENT_AMBIGUOUS_RATE",
        value_name = "SHARE",
        default_value_t = 0.0
    )]
    pub payment_ambiguous_rate: f64,
    /// How long the provider simulator's ledger (`provider_ledger` in the payment database, its own records, written outside payment's transactions) keeps an answer; older ones are pruned.
    #[arg(
        long,
        env = "PAYMENT_PROVIDER_LEDGER_DAYS",
        value_name = "DAYS",
        default_value_t = 30
    )]
    pub payment_provider_ledger_days: u64,
    /// Provider calls made at once, each under a lease (no transaction is open while the provider answers).
    #[arg(long, env = "PAYMENT_PROVIDER_CALLERS", value_name = "N", default_value_t = PROVIDER_CALLERS)]
    pub payment_provider_callers: usize,
    /// The order service's admin listener, where the payment token of an attempt is asked for (the topics do not carry it); `https://` checks the order service's certificate against the system's CAs and `TLS_CA_FILE`'s.
    #[arg(long, env = "ORDER_URL", value_name = "URL", default_value = ORDER_URL)]
    pub order_url: String,
    /// Payment's `payment-methods:read` bearer token for the order service; a secret, so usually `PAYMENT_ORDER_TOKEN_FILE`.
    #[arg(long, env = "PAYMENT_ORDER_TOKEN", value_name = "TOKEN")]
    pub payment_order_token: Option<String>,
}

impl ServiceArgs for Args {
    type Config = Config;

    fn common(&self) -> &CommonArgs {
        &self.common
    }

    fn into_config(self, service: &Service) -> Result<Config> {
        let provider = ProviderConfig {
            latency: Duration::from_millis(self.payment_provider_latency_ms),
            decline_rate: self.payment_decline_rate,
            outage_rate: self.payment_outage_rate,
            ambiguous_rate: self.payment_ambiguous_rate,
            ledger_retention: Duration::from_secs(24 * 3600 * self.payment_provider_ledger_days),
            timeout: Duration::from_millis(self.payment_provider_timeout_ms),
        };
        ensure!(
            !provider.timeout.is_zero(),
            "PAYMENT_PROVIDER_TIMEOUT_MS must be above 0"
        );
        ensure!(
            !provider.ledger_retention.is_zero(),
            "PAYMENT_PROVIDER_LEDGER_DAYS must be at least 1"
        );
        ensure!(
            (0.0..=1.0).contains(&provider.decline_rate),
            "PAYMENT_DECLINE_RATE must be between 0 and 1"
        );
        ensure!(
            (0.0..=1.0).contains(&provider.outage_rate),
            "PAYMENT_OUTAGE_RATE must be between 0 and 1"
        );
        ensure!(
            (0.0..=1.0).contains(&provider.ambiguous_rate),
            "PAYMENT_AMBIGUOUS_RATE must be between 0 and 1"
        );
        ensure!(
            self.payment_provider_callers >= 1,
            "PAYMENT_PROVIDER_CALLERS must be at least 1"
        );
        let common = self.common.into_config(service)?;
        let orders = OrderService::new(self.order_url, self.payment_order_token, &common.http_trust)?;
        Ok(Config {
            common,
            provider,
            provider_callers: self.payment_provider_callers,
            orders,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub provider: ProviderConfig,
    /// Provider calls made at once (`PAYMENT_PROVIDER_CALLERS`).
    pub provider_callers: usize,
    /// Where payment tokens come from (`ORDER_URL`, `PAYMENT_ORDER_TOKEN`).
    pub orders: OrderService,
}

/// Provider calls made at once by default: enough to keep a provider with
/// some latency busy, few enough to leave the pool its connections.
const PROVIDER_CALLERS: usize = 4;

impl Config {
    /// The configuration from the environment and the command line; exits
    /// after `--help`, `--version`, `--print-config` or a wrong value.
    pub fn load() -> Self {
        omnisaga_runtime::cli::load::<Args>(&SERVICE)
    }

    pub fn with_common(common: CommonConfig) -> Self {
        let orders = OrderService::new(ORDER_URL.into(), None, &common.http_trust)
            .expect("an HTTP client with the configured CAs builds");
        Self {
            common,
            provider: ProviderConfig::default(),
            provider_callers: PROVIDER_CALLERS,
            orders,
        }
    }
}

#[cfg(test)]
mod tests {
    use omnisaga_runtime::cli::reference;

    #[test]
    fn the_checked_in_configuration_reference_lists_the_settings() {
        reference::check("payment", &reference::service::<super::Args>(&super::SERVICE));
    }
}
