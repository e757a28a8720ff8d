//! Configuration of the order service, read once at start.
//!
//! Besides the common variables of `omnisaga_runtime::config`:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HTTP_ADDR` | `127.0.0.1:8080` | API listen address |
//! | `ADMIN_HTTP_ADDR` | `127.0.0.1:8180` | the admin and internal routes' listen address (`HTTP_ADDR`'s port + 100) |
//! | `ORDER_DELIVERY_DAYS` | `3` | business days from order to estimated delivery |
//! | `ORDER_MAX_QUANTITY` | `100` | largest quantity of one line item |
//! | `ORDER_MAX_ITEMS` | `50` | most line items in one order |
//! | `ORDER_PAYMENT_DEADLINE_MS` | `900000` | after a failed payment, time to pay before the order is cancelled |
//! | `ORDER_PAYMENT_DELAY_NOTICE_MS` | `60000` | no payment answer for this long: the customer is told it is delayed |
//! | `ORDER_STUCK_AFTER_MS` | `1800000` | an order `PLACED`, `PAID` or `READY_FOR_SHIPMENT` unchanged this long counts as stuck (`omnisaga_sagas_stuck{status}`, alert `SagaStuck`) |
//! | `ORDER_DEADLINE_TICK_MS` | `1000` | how often deadlines are checked (they are seconds to minutes long) |
//! | `WAREHOUSE_URL` | unset | the warehouse's admin listener (e.g. `http://127.0.0.1:8182`), where `GET /v1/catalog` asks for availability |
//! | `WAREHOUSE_TOKEN` | unset | the order service's bearer token for the warehouse (`stock:read`); a secret, so usually `WAREHOUSE_TOKEN_FILE` |
//! | `CATALOG_SEED_FILE` | unset | JSON catalog upserted at start |

use std::{path::PathBuf, time::Duration};

use anyhow::Result;
use omnisaga_runtime::config::{parse_or, var, CommonConfig};

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
    /// An open order unchanged this long is stuck (`ORDER_STUCK_AFTER_MS`).
    pub stuck_after: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            common: CommonConfig::from_env("order", 8080)?,
            delivery_days: parse_or("ORDER_DELIVERY_DAYS", 3)?,
            max_quantity: parse_or("ORDER_MAX_QUANTITY", 100)?,
            max_items: parse_or("ORDER_MAX_ITEMS", 50)?,
            warehouse_url: var("WAREHOUSE_URL")?,
            warehouse_token: var("WAREHOUSE_TOKEN")?.map(Secret),
            seed_file: var("CATALOG_SEED_FILE")?.map(PathBuf::from),
            payment_deadline: Duration::from_millis(parse_or("ORDER_PAYMENT_DEADLINE_MS", 900_000)?),
            payment_delay_notice: Duration::from_millis(parse_or("ORDER_PAYMENT_DELAY_NOTICE_MS", 60_000)?),
            deadline_tick: Duration::from_millis(parse_or("ORDER_DEADLINE_TICK_MS", 1000)?),
            stuck_after: Duration::from_millis(parse_or("ORDER_STUCK_AFTER_MS", 1_800_000)?),
        })
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
            stuck_after: Duration::from_secs(1800),
        }
    }
}
