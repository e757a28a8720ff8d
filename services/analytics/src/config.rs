//! Configuration of the analytics service: the settings every service shares
//! (`omnisaga_runtime::config`, see the README's table) and the dashboard's.
//! Its consumer fetches what 100 ms gather (`Fetch::Batched`): it follows
//! the saga and is never on an order's critical path.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HTTP_ADDR` | `127.0.0.1:8084` | API, dashboard, health and metrics listen address |
//! | `ANALYTICS_STUCK_AFTER_SECONDS` | `300` | the dashboard counts an order stuck once it has been at its latest stage this long |
//! | `ANALYTICS_DASHBOARD_REFRESH_SECONDS` | `10` | how often the dashboard page reloads itself |

use std::time::Duration;

use anyhow::{ensure, Result};
use omnisaga_runtime::config::{parse_or, CommonConfig, Fetch};

/// The dashboard's defaults.
const STUCK_AFTER_SECONDS: u64 = 300;
const DASHBOARD_REFRESH_SECONDS: u64 = 10;

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// An order at its latest stage this long is stuck (`ANALYTICS_STUCK_AFTER_SECONDS`).
    pub stuck_after: Duration,
    /// How often the dashboard reloads (`ANALYTICS_DASHBOARD_REFRESH_SECONDS`).
    pub dashboard_refresh: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self> {
        let stuck_after = parse_or("ANALYTICS_STUCK_AFTER_SECONDS", STUCK_AFTER_SECONDS)?;
        let refresh = parse_or("ANALYTICS_DASHBOARD_REFRESH_SECONDS", DASHBOARD_REFRESH_SECONDS)?;
        ensure!(
            refresh >= 1,
            "ANALYTICS_DASHBOARD_REFRESH_SECONDS must be at least 1"
        );
        Ok(Self {
            common: CommonConfig::from_env_with("analytics", 8084, Fetch::Batched)?,
            stuck_after: Duration::from_secs(stuck_after),
            dashboard_refresh: Duration::from_secs(refresh),
        })
    }

    /// The service with `common` settings and the dashboard's defaults, as
    /// the tests start it.
    pub fn with_common(common: CommonConfig) -> Self {
        Self {
            common,
            stuck_after: Duration::from_secs(STUCK_AFTER_SECONDS),
            dashboard_refresh: Duration::from_secs(DASHBOARD_REFRESH_SECONDS),
        }
    }
}
