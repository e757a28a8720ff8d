//! Configuration of the warehouse service.
//!
//! Besides the settings every service has ([`CommonArgs`]), the warehouse
//! service's own: each an environment variable with its default and meaning
//! below (`warehouse --help`, docs/configuration.md).

use std::{path::PathBuf, time::Duration};

use anyhow::{ensure, Result};
use clap::Parser;
use omnisaga_runtime::{
    cli::{CommonArgs, Service, ServiceArgs},
    config::{CommonConfig, Fetch},
};

/// The warehouse service as the command line knows it.
pub const SERVICE: Service = Service {
    name: "warehouse",
    port: 8082,
    fetch: Fetch::Prompt,
};

/// The warehouse service: stock reservations, and the simulated pickers who pick, pack and ship.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Pick tasks worked at once.
    #[arg(long, env = "WAREHOUSE_PICKERS", value_name = "N", default_value_t = 4)]
    pub warehouse_pickers: usize,
    /// Simulated time to pick an order.
    #[arg(long, env = "WAREHOUSE_PICK_MS", value_name = "MS", default_value_t = 200)]
    pub warehouse_pick_ms: u64,
    /// Simulated time to pack it.
    #[arg(long, env = "WAREHOUSE_PACK_MS", value_name = "MS", default_value_t = 100)]
    pub warehouse_pack_ms: u64,
    /// Simulated time from packed to handed to the carrier.
    #[arg(long, env = "WAREHOUSE_SHIP_MS", value_name = "MS", default_value_t = 200)]
    pub warehouse_ship_ms: u64,
    /// JSON with the initial stock per SKU (added once per SKU).
    #[arg(long, env = "CATALOG_SEED_FILE", value_name = "PATH")]
    pub catalog_seed_file: Option<PathBuf>,
    /// The `OrderShipped` version published: 1 while a consumer older than this release may run (one tracking number), then 2 (one tracking number per parcel); `make run` and the test stacks set 2. See docs/api.md, "Versions and deprecations".
    #[arg(
        long,
        env = "WAREHOUSE_ORDER_SHIPPED_VERSION",
        value_name = "1|2",
        default_value_t = 1
    )]
    pub warehouse_order_shipped_version: u32,
}

impl ServiceArgs for Args {
    type Config = Config;

    fn common(&self) -> &CommonArgs {
        &self.common
    }

    fn into_config(self, service: &Service) -> Result<Config> {
        ensure!(
            self.warehouse_pickers >= 1,
            "WAREHOUSE_PICKERS must be at least 1"
        );
        let order_shipped_version = self.warehouse_order_shipped_version;
        ensure!(
            matches!(order_shipped_version, 1 | 2),
            "WAREHOUSE_ORDER_SHIPPED_VERSION must be 1 or 2, not {order_shipped_version}"
        );
        Ok(Config {
            common: self.common.into_config(service)?,
            pickers: self.warehouse_pickers,
            pick: Duration::from_millis(self.warehouse_pick_ms),
            pack: Duration::from_millis(self.warehouse_pack_ms),
            ship: Duration::from_millis(self.warehouse_ship_ms),
            seed_file: self.catalog_seed_file,
            order_shipped_version,
        })
    }
}

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
    /// The configuration from the environment and the command line; exits
    /// after `--help`, `--version`, `--print-config` or a wrong value.
    pub fn load() -> Self {
        omnisaga_runtime::cli::load::<Args>(&SERVICE)
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

#[cfg(test)]
mod config_reference {
    use omnisaga_runtime::cli::reference;

    #[test]
    fn the_checked_in_configuration_reference_lists_the_settings() {
        reference::check("warehouse", &reference::service::<super::Args>(&super::SERVICE));
    }
}
