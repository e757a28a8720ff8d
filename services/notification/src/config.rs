//! Configuration of the notification service: the settings every service shares
//! (`omnisaga_runtime::config`, see the README's table) and none of its own.
//! Its consumer fetches what 100 ms gather (`Fetch::Batched`): it follows
//! the saga and is never on an order's critical path.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HTTP_ADDR` | `127.0.0.1:8083` | API, health and metrics listen address |

use anyhow::Result;
use omnisaga_runtime::config::{CommonConfig, Fetch};

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
}

impl Config {
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            common: CommonConfig::from_env_with("notification", 8083, Fetch::Batched)?,
        })
    }

    /// The service with `common` settings, as the tests start it.
    pub fn with_common(common: CommonConfig) -> Self {
        Self { common }
    }
}
