//! Configuration of the order service, read once at start.
//!
//! Besides the settings every service has ([`CommonArgs`]), the order
//! service's own: each an environment variable with its default and meaning
//! below (`order --help`, docs/configuration.md).

use std::{path::PathBuf, time::Duration};

use anyhow::Result;
use clap::Parser;
use omnisaga_runtime::{
    cli::{CommonArgs, Service, ServiceArgs},
    config::{CommonConfig, Fetch},
};

/// The order service as the command line knows it.
pub const SERVICE: Service = Service {
    name: "order",
    port: 8080,
    fetch: Fetch::Prompt,
};

/// The order service: the HTTP API, the order aggregate and the saga's owner.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Business days from order to the delivery estimate.
    #[arg(long, env = "ORDER_DELIVERY_DAYS", value_name = "DAYS", default_value_t = 3)]
    pub order_delivery_days: u32,
    /// Largest quantity of one line item.
    #[arg(long, env = "ORDER_MAX_QUANTITY", value_name = "N", default_value_t = 100)]
    pub order_max_quantity: u32,
    /// Most line items in one order.
    #[arg(long, env = "ORDER_MAX_ITEMS", value_name = "N", default_value_t = 50)]
    pub order_max_items: usize,
    /// After a failed payment, time to pay before the order is cancelled.
    #[arg(
        long,
        env = "ORDER_PAYMENT_DEADLINE_MS",
        value_name = "MS",
        default_value_t = 900_000
    )]
    pub order_payment_deadline_ms: u64,
    /// No payment answer for this long: the customer is told it is delayed.
    #[arg(
        long,
        env = "ORDER_PAYMENT_DELAY_NOTICE_MS",
        value_name = "MS",
        default_value_t = 60_000
    )]
    pub order_payment_delay_notice_ms: u64,
    /// An order `PLACED`, `PAID` or `READY_FOR_SHIPMENT` unchanged this long is stuck: counted in `omnisaga_sagas_stuck{status}`, alert `SagaStuck` after 10 minutes (`AWAITING_PAYMENT` has its deadline, which cancels).
    #[arg(
        long,
        env = "ORDER_STUCK_AFTER_MS",
        value_name = "MS",
        default_value_t = 1_800_000
    )]
    pub order_stuck_after_ms: u64,
    /// An order `PLACED` this long (no payment answer) is escalated: the customer is told once it is delayed (`OrderEscalated`), it is listed escalated (`GET /v1/admin/orders?escalated=true`) and counted in `omnisaga_sagas_escalated{status}` (alert `SagaEscalated`). It is not cancelled: payment's answer still moves it on.
    #[arg(
        long,
        env = "ORDER_PLACED_DEADLINE_MS",
        value_name = "MS",
        default_value_t = 1_800_000
    )]
    pub order_placed_deadline_ms: u64,
    /// An order `PAID` this long (the warehouse has not packed it) is escalated as a `PLACED` one is; the warehouse's queued picks still complete it.
    #[arg(
        long,
        env = "ORDER_PAID_DEADLINE_MS",
        value_name = "MS",
        default_value_t = 3_600_000
    )]
    pub order_paid_deadline_ms: u64,
    /// An order `READY_FOR_SHIPMENT` this long (packed, not shipped) is escalated as a `PLACED` one is; its shipment still completes it.
    #[arg(
        long,
        env = "ORDER_READY_FOR_SHIPMENT_DEADLINE_MS",
        value_name = "MS",
        default_value_t = 86_400_000
    )]
    pub order_ready_for_shipment_deadline_ms: u64,
    /// How often deadlines are checked (they are seconds to minutes long).
    #[arg(
        long,
        env = "ORDER_DEADLINE_TICK_MS",
        value_name = "MS",
        default_value_t = 1000
    )]
    pub order_deadline_tick_ms: u64,
    /// The warehouse's admin listener (`http://127.0.0.1:8182` locally), where `GET /v1/catalog` asks for availability. Unset: the catalog's `available` is null.
    #[arg(long, env = "WAREHOUSE_URL", value_name = "URL")]
    pub warehouse_url: Option<String>,
    /// The order service's `stock:read` bearer token for the warehouse's stock levels; a secret, so usually `WAREHOUSE_TOKEN_FILE`.
    #[arg(long, env = "WAREHOUSE_TOKEN", value_name = "TOKEN")]
    pub warehouse_token: Option<String>,
    /// Live order updates (`GET /v1/orders/{id}/events`): a comment is sent on a stream quiet this long, so proxies keep it open.
    #[arg(
        long,
        env = "ORDER_EVENTS_HEARTBEAT_MS",
        value_name = "MS",
        default_value_t = 15_000
    )]
    pub order_events_heartbeat_ms: u64,
    /// Live order update streams one customer may have open on one instance; one more is answered 429 `too_many_streams`.
    #[arg(
        long,
        env = "ORDER_EVENTS_MAX_PER_CUSTOMER",
        value_name = "N",
        default_value_t = 5
    )]
    pub order_events_max_per_customer: usize,
    /// Live order update streams one instance serves at once; one more is answered 503 `overloaded`.
    #[arg(
        long,
        env = "ORDER_EVENTS_MAX_STREAMS",
        value_name = "N",
        default_value_t = 1000
    )]
    pub order_events_max_streams: usize,
    /// Messages one live order update stream holds for a slow reader; a reader that leaves it full for a heartbeat interval is disconnected (it resumes with `Last-Event-ID`).
    #[arg(long, env = "ORDER_EVENTS_BUFFER", value_name = "N", default_value_t = 64)]
    pub order_events_buffer: usize,
    /// Live order updates: while a stream is open on an instance, it looks this often, in one query, for events any instance recorded (a change arrives within about this long); with no stream open it does not look.
    #[arg(long, env = "ORDER_EVENTS_POLL_MS", value_name = "MS", default_value_t = 250)]
    pub order_events_poll_ms: u64,
    /// JSON catalog (prices) upserted at start.
    #[arg(long, env = "CATALOG_SEED_FILE", value_name = "PATH")]
    pub catalog_seed_file: Option<PathBuf>,
}

impl ServiceArgs for Args {
    type Config = Config;

    fn common(&self) -> &CommonArgs {
        &self.common
    }

    fn into_config(self, service: &Service) -> Result<Config> {
        Ok(Config {
            common: self.common.into_config(service)?,
            delivery_days: self.order_delivery_days,
            max_quantity: self.order_max_quantity,
            max_items: self.order_max_items,
            warehouse_url: self.warehouse_url,
            warehouse_token: self.warehouse_token.map(Secret),
            seed_file: self.catalog_seed_file,
            payment_deadline: Duration::from_millis(self.order_payment_deadline_ms),
            payment_delay_notice: Duration::from_millis(self.order_payment_delay_notice_ms),
            deadline_tick: Duration::from_millis(self.order_deadline_tick_ms),
            stage_deadlines: StageDeadlines {
                placed: Duration::from_millis(self.order_placed_deadline_ms),
                paid: Duration::from_millis(self.order_paid_deadline_ms),
                ready_for_shipment: Duration::from_millis(self.order_ready_for_shipment_deadline_ms),
            },
            stuck_after: Duration::from_millis(self.order_stuck_after_ms),
            live: Live {
                heartbeat: Duration::from_millis(self.order_events_heartbeat_ms.max(1)),
                max_per_customer: self.order_events_max_per_customer.max(1),
                max_streams: self.order_events_max_streams.max(1),
                buffer: self.order_events_buffer.max(1),
                poll: Duration::from_millis(self.order_events_poll_ms.max(1)),
            },
        })
    }
}

/// A secret setting: its value is never printed.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub delivery_days: u32,
    pub max_quantity: u32,
    pub max_items: usize,
    pub warehouse_url: Option<String>,
    /// The bearer token sent to the warehouse (`WAREHOUSE_TOKEN`); redacted in `Debug`.
    pub warehouse_token: Option<Secret>,
    pub seed_file: Option<PathBuf>,
    pub payment_deadline: Duration,
    pub payment_delay_notice: Duration,
    pub deadline_tick: Duration,
    /// When an order waiting in `PLACED`, `PAID` or `READY_FOR_SHIPMENT` is escalated.
    pub stage_deadlines: StageDeadlines,
    /// An open order unchanged this long is stuck (`ORDER_STUCK_AFTER_MS`).
    pub stuck_after: Duration,
    /// Live order updates' settings (`ORDER_EVENTS_*`).
    pub live: Live,
}

/// How long an order may wait in each stage that waits on another
/// service before it is escalated (`ORDER_*_DEADLINE_MS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageDeadlines {
    /// In `PLACED`, since it was placed: no payment answer.
    pub placed: Duration,
    /// In `PAID`, since it was paid: not packed.
    pub paid: Duration,
    /// In `READY_FOR_SHIPMENT`, since it was packed: not shipped.
    pub ready_for_shipment: Duration,
}

impl Default for StageDeadlines {
    fn default() -> Self {
        Self {
            placed: Duration::from_secs(1800),
            paid: Duration::from_secs(3600),
            ready_for_shipment: Duration::from_secs(86_400),
        }
    }
}

impl StageDeadlines {
    /// The deadline of the stage `status` names, if it has one of these.
    pub fn of(&self, status: &str) -> Option<Duration> {
        match status {
            "PLACED" => Some(self.placed),
            "PAID" => Some(self.paid),
            "READY_FOR_SHIPMENT" => Some(self.ready_for_shipment),
            _ => None,
        }
    }
}

/// The settings of the live order update streams.
#[derive(Debug, Clone, Copy)]
pub struct Live {
    /// A stream quiet this long gets a comment.
    pub heartbeat: Duration,
    /// Streams one customer may have open on one instance.
    pub max_per_customer: usize,
    /// Streams one instance serves at once.
    pub max_streams: usize,
    /// Messages held for a slow reader before it is dropped.
    pub buffer: usize,
    /// How often the instance looks for new events while a stream is open.
    pub poll: Duration,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(15),
            max_per_customer: 5,
            max_streams: 1000,
            buffer: 64,
            poll: Duration::from_millis(250),
        }
    }
}

impl Config {
    /// The configuration from the environment and the command line; exits
    /// after `--help`, `--version`, `--print-config` or a wrong value.
    pub fn load() -> Self {
        omnisaga_runtime::cli::load::<Args>(&SERVICE)
    }

    /// Defaults for tests, around the given common settings.
    pub fn with_common(common: CommonConfig) -> Self {
        Self {
            common,
            delivery_days: 3,
            max_quantity: 100,
            max_items: 50,
            warehouse_url: None,
            warehouse_token: None,
            seed_file: None,
            payment_deadline: Duration::from_secs(900),
            payment_delay_notice: Duration::from_secs(60),
            deadline_tick: Duration::from_millis(250),
            stage_deadlines: StageDeadlines::default(),
            stuck_after: Duration::from_secs(1800),
            live: Live::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use omnisaga_runtime::cli::reference;

    #[test]
    fn the_checked_in_configuration_reference_lists_the_settings() {
        reference::check("order", &reference::service::<super::Args>(&super::SERVICE));
    }
}
