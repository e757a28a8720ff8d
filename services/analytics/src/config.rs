//! Configuration of the analytics service: the settings every service shares
//! (`omnisaga_runtime::cli::CommonArgs`, see docs/configuration.md) and the dashboard's.
//! Its consumer fetches what 100 ms gather (`Fetch::Batched`): it follows
//! the saga and is never on an order's critical path.
//!
//! Its own settings, each an environment variable with its default and
//! meaning, are below (`analytics --help`, docs/configuration.md).

use std::time::Duration;

use anyhow::{ensure, Result};
use clap::Parser;
use omnisaga_runtime::{
    cli::{CommonArgs, Service, ServiceArgs},
    config::{CommonConfig, Fetch},
};

/// The dashboard's defaults.
const STUCK_AFTER_SECONDS: u64 = 300;
const DASHBOARD_REFRESH_SECONDS: u64 = 10;
/// The analysts' database role.
const READER_ROLE: &str = "omnisaga_analyst";

/// The analytics service as the command line knows it.
pub const SERVICE: Service = Service {
    name: "analytics",
    port: 8084,
    fetch: Fetch::Batched,
};

/// The analytics service: the saga's events as a star schema, and the dashboard.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The dashboard counts an order stuck once it has been at its latest stage this long.
    #[arg(long, env = "ANALYTICS_STUCK_AFTER_SECONDS", value_name = "SECONDS", default_value_t = STUCK_AFTER_SECONDS)]
    pub analytics_stuck_after_seconds: u64,
    /// How often the dashboard page reloads itself (at least 1).
    #[arg(long, env = "ANALYTICS_DASHBOARD_REFRESH_SECONDS", value_name = "SECONDS", default_value_t = DASHBOARD_REFRESH_SECONDS)]
    pub analytics_dashboard_refresh_seconds: u64,
    /// The PostgreSQL role analysts log in as (lower-case letters, digits, _): granted read access to the star schema (and nothing else) at every start, when it exists.
    #[arg(long, env = "ANALYTICS_READER_ROLE", value_name = "ROLE", default_value = READER_ROLE)]
    pub analytics_reader_role: String,
}

impl ServiceArgs for Args {
    type Config = Config;

    fn common(&self) -> &CommonArgs {
        &self.common
    }

    fn into_config(self, service: &Service) -> Result<Config> {
        let refresh = self.analytics_dashboard_refresh_seconds;
        ensure!(
            refresh >= 1,
            "ANALYTICS_DASHBOARD_REFRESH_SECONDS must be at least 1"
        );
        let reader_role = self.analytics_reader_role;
        ensure!(
            is_identifier(&reader_role),
            "ANALYTICS_READER_ROLE must be a plain role name (lower-case letters, digits, _), not {reader_role:?}"
        );
        Ok(Config {
            common: self.common.into_config(service)?,
            stuck_after: Duration::from_secs(self.analytics_stuck_after_seconds),
            dashboard_refresh: Duration::from_secs(refresh),
            reader_role,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// An order at its latest stage this long is stuck (`ANALYTICS_STUCK_AFTER_SECONDS`).
    pub stuck_after: Duration,
    /// How often the dashboard reloads (`ANALYTICS_DASHBOARD_REFRESH_SECONDS`).
    pub dashboard_refresh: Duration,
    /// The analysts' read-only database role (`ANALYTICS_READER_ROLE`).
    pub reader_role: String,
}

impl Config {
    /// The configuration from the environment and the command line; exits
    /// after `--help`, `--version`, `--print-config` or a wrong value.
    pub fn load() -> Self {
        omnisaga_runtime::cli::load::<Args>(&SERVICE)
    }

    /// The service with `common` settings and the dashboard's defaults, as
    /// the tests start it.
    pub fn with_common(common: CommonConfig) -> Self {
        Self {
            common,
            stuck_after: Duration::from_secs(STUCK_AFTER_SECONDS),
            dashboard_refresh: Duration::from_secs(DASHBOARD_REFRESH_SECONDS),
            reader_role: READER_ROLE.into(),
        }
    }
}

/// A lower-case SQL identifier that needs no quoting.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

#[cfg(test)]
mod tests {
    use super::is_identifier;

    #[test]
    fn a_reader_role_must_be_a_plain_identifier() {
        assert!(is_identifier("omnisaga_analyst"));
        assert!(is_identifier("_bi2"));
        for bad in [
            "",
            "Analyst",
            "2nd",
            "a\"; DROP TABLE x; --",
            "a b",
            &"a".repeat(64),
        ] {
            assert!(!is_identifier(bad), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod config_reference {
    use omnisaga_runtime::cli::reference;

    #[test]
    fn the_checked_in_configuration_reference_lists_the_settings() {
        reference::check("analytics", &reference::service::<super::Args>(&super::SERVICE));
    }
}
