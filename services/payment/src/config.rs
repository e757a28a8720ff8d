//! Configuration of the payment service.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HTTP_ADDR` | `127.0.0.1:8081` | health and metrics listen address |
//! | `ADMIN_HTTP_ADDR` | `127.0.0.1:8181` | the admin and internal routes' listen address (`HTTP_ADDR`'s port + 100) |
//! | `PAYMENT_PROVIDER_LATENCY_MS` | `0` | simulated provider latency |
//! | `PAYMENT_PROVIDER_TIMEOUT_MS` | `10000` | longest a provider call may take; past it the call has no answer and is made again later (no transaction is open meanwhile) |
//! | `PAYMENT_DECLINE_RATE` | `0` | share of random declines, 0 to 1 |
//! | `PAYMENT_OUTAGE_RATE` | `0` | share of random provider outages, 0 to 1 |
//! | `PAYMENT_AMBIGUOUS_RATE` | `0` | share of first approvals the simulator records and then answers unavailable (charged, answer lost), 0 to 1 |
//! | `PAYMENT_PROVIDER_LEDGER_DAYS` | `30` | how long the simulator's ledger (`provider_ledger`) keeps an answer |
//! | `PAYMENT_PROVIDER_CALLERS` | `4` | provider calls made at once (each a worker with its own transaction) |
//! | `ORDER_URL` | `http://127.0.0.1:8180` | the order service's admin listener, where the payment token of an attempt is asked for (the topics do not carry it); `https://` checks the order service's certificate against the system's CAs and `TLS_CA_FILE`'s |
//! | `PAYMENT_ORDER_TOKEN` | unset | payment's `payment-methods:read` token for that; a secret, so usually `PAYMENT_ORDER_TOKEN_FILE` |

use std::time::Duration;

use anyhow::{ensure, Result};
use omnisaga_runtime::config::{parse_or, var, CommonConfig};

use crate::{orders::OrderService, provider::ProviderConfig};

/// The order service's local address.
const ORDER_URL: &str = "http://127.0.0.1:8180";

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
    pub fn from_env() -> Result<Self> {
        let provider = ProviderConfig {
            latency: Duration::from_millis(parse_or("PAYMENT_PROVIDER_LATENCY_MS", 0)?),
            decline_rate: parse_or("PAYMENT_DECLINE_RATE", 0.0)?,
            outage_rate: parse_or("PAYMENT_OUTAGE_RATE", 0.0)?,
            ambiguous_rate: parse_or("PAYMENT_AMBIGUOUS_RATE", 0.0)?,
            ledger_retention: Duration::from_secs(
                24 * 3600 * parse_or("PAYMENT_PROVIDER_LEDGER_DAYS", 30u64)?,
            ),
            timeout: Duration::from_millis(parse_or("PAYMENT_PROVIDER_TIMEOUT_MS", 10_000)?),
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
        let provider_callers = parse_or("PAYMENT_PROVIDER_CALLERS", PROVIDER_CALLERS)?;
        ensure!(
            provider_callers >= 1,
            "PAYMENT_PROVIDER_CALLERS must be at least 1"
        );
        let common = CommonConfig::from_env("payment", 8081)?;
        let orders = OrderService::new(
            var("ORDER_URL")?.unwrap_or_else(|| ORDER_URL.into()),
            var("PAYMENT_ORDER_TOKEN")?,
            &common.http_trust,
        )?;
        Ok(Self {
            common,
            provider,
            provider_callers,
            orders,
        })
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
