//! Configuration of the analytics service: the settings every service shares
//! (`omnisaga_runtime::config`, see the README's table) and the dashboard's.
//! Its consumer fetches what 100 ms gather (`Fetch::Batched`): it follows
//! the saga and is never on an order's critical path.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HTTP_ADDR` | `127.0.0.1:8084` | API, dashboard, health and metrics listen address |
//! | `ADMIN_HTTP_ADDR` | `127.0.0.1:8184` | the admin and internal routes' listen address (`HTTP_ADDR`'s port + 100) |
//! | `ANALYTICS_STUCK_AFTER_SECONDS` | `300` | the dashboard counts an order stuck once it has been at its latest stage this long |
//! | `ANALYTICS_DASHBOARD_REFRESH_SECONDS` | `10` | how often the dashboard page reloads itself |
//! | `ANALYTICS_READER_ROLE` | `omnisaga_analyst` | the PostgreSQL role analysts log in as: granted read access to the star schema at every start, when it exists |

use std::time::Duration;

use anyhow::{ensure, Result};
use omnisaga_runtime::config::{parse_or, var, CommonConfig, Fetch};

/// The dashboard's defaults.
const STUCK_AFTER_SECONDS: u64 = 300;
const DASHBOARD_REFRESH_SECONDS: u64 = 10;
/// The analysts' database role.
const READER_ROLE: &str = "omnisaga_analyst";

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
    pub fn from_env() -> Result<Self> {
        let stuck_after = parse_or("ANALYTICS_STUCK_AFTER_SECONDS", STUCK_AFTER_SECONDS)?;
        let refresh = parse_or("ANALYTICS_DASHBOARD_REFRESH_SECONDS", DASHBOARD_REFRESH_SECONDS)?;
        ensure!(
            refresh >= 1,
            "ANALYTICS_DASHBOARD_REFRESH_SECONDS must be at least 1"
        );
        let reader_role = var("ANALYTICS_READER_ROLE")?.unwrap_or_else(|| READER_ROLE.into());
        ensure!(
            is_identifier(&reader_role),
            "ANALYTICS_READER_ROLE must be a plain role name (lower-case letters, digits, _), not {reader_role:?}"
        );
        Ok(Self {
            common: CommonConfig::from_env_with("analytics", 8084, Fetch::Batched)?,
            stuck_after: Duration::from_secs(stuck_after),
            dashboard_refresh: Duration::from_secs(refresh),
            reader_role,
        })
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
