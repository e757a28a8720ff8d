//! Configuration of the warehouse service.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HTTP_ADDR` | `127.0.0.1:8082` | API listen address |
//! | `ADMIN_HTTP_ADDR` | `127.0.0.1:8182` | the admin and internal routes' listen address (`HTTP_ADDR`'s port + 100) |
//! | `WAREHOUSE_PICKERS` | `4` | pick tasks worked at once |
//! | `WAREHOUSE_PICK_MS` | `200` | time to pick an order |
//! | `WAREHOUSE_PACK_MS` | `100` | time to pack it |
//! | `WAREHOUSE_SHIP_MS` | `200` | from packed to handed to the carrier |
//! | `CATALOG_SEED_FILE` | unset | JSON with initial stock per SKU (added once per SKU) |
//! | `WAREHOUSE_ORDER_SHIPPED_VERSION` | `1` | `OrderShipped` version published: 1 (one tracking number, what readers older than this release know) or 2 (one per parcel); 2 once every consumer of the warehouse topic runs this release |

use std::{path::PathBuf, time::Duration};

use anyhow::{ensure, Result};
use omnisaga_runtime::config::{parse_or, var, CommonConfig};

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub pickers: usize,
    pub pick: Duration,
    pub pack: Duration,
    pub ship: Duration,
    pub seed_file: Option<PathBuf>,
    /// The `OrderShipped` version the pickers publish: 1 or 2.
    pub order_shipped_version: u32,
}

impl Config {
    pub fn from_env() -> Result<Self> {
        let pickers = parse_or("WAREHOUSE_PICKERS", 4)?;
        ensure!(pickers >= 1, "WAREHOUSE_PICKERS must be at least 1");
        let order_shipped_version = parse_or("WAREHOUSE_ORDER_SHIPPED_VERSION", 1)?;
        ensure!(
            matches!(order_shipped_version, 1 | 2),
            "WAREHOUSE_ORDER_SHIPPED_VERSION must be 1 or 2, not {order_shipped_version}"
        );
        Ok(Self {
            common: CommonConfig::from_env("warehouse", 8082)?,
            pickers,
            pick: Duration::from_millis(parse_or("WAREHOUSE_PICK_MS", 200)?),
            pack: Duration::from_millis(parse_or("WAREHOUSE_PACK_MS", 100)?),
            ship: Duration::from_millis(parse_or("WAREHOUSE_SHIP_MS", 200)?),
            seed_file: var("CATALOG_SEED_FILE")?.map(PathBuf::from),
            order_shipped_version,
        })
    }

    pub fn with_common(common: CommonConfig) -> Self {
        Self {
            common,
            pickers: 4,
            pick: Duration::ZERO,
            pack: Duration::ZERO,
            ship: Duration::ZERO,
            seed_file: None,
            order_shipped_version: 2,
        }
    }
}
