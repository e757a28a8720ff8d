//! The analytics verbs' arguments: `summary`, `export orders` and
//! `customer payments` (run by [`super`]).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Only orders placed at or after TIME: RFC 3339 or an age (90s, 10m, 2h, 1d) [default: every order].
    #[arg(long, value_name = "TIME", value_parser = crate::since::parse)]
    pub from: Option<DateTime<Utc>>,
    /// Only orders placed before TIME: RFC 3339 or an age [default: no end].
    #[arg(long, value_name = "TIME", value_parser = crate::since::parse)]
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// The order facts of the orders placed in a window, as CSV with a
    /// header row (GET /v1/exports/orders.csv, `analytics:read`; the columns
    /// are in docs/analytics.md).
    ///
    /// Written as the service streams it, to stdout or to --output (under a
    /// temporary name first, renamed once the whole file arrived, so a cut
    /// export leaves no file that looks whole). At most 366 days at once.
    #[command(after_help = "Examples:
  omnisaga export orders --from 1d > orders.csv
  omnisaga export orders --from 2026-12-01T00:00:00Z --to 2026-12-08T00:00:00Z --output week-49.csv")]
    Orders(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The window's start: RFC 3339 or an age (90s, 10m, 2h, 1d).
    #[arg(long, value_name = "TIME", value_parser = crate::since::parse)]
    pub from: DateTime<Utc>,
    /// The window's end: RFC 3339 or an age [default: now].
    #[arg(long, value_name = "TIME", value_parser = crate::since::parse)]
    pub to: Option<DateTime<Utc>>,
    /// Write the CSV to FILE instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// One customer's payment answers and voids, newest first, with each
    /// payment's order, amount, currency and time: what a CRM reads for
    /// loyalty bonuses (GET /v1/customers/{id}/payments, `analytics:read`).
    #[command(after_help = "Examples:
  omnisaga customer payments customer-1
  omnisaga customer payments customer-1 --limit 500 --json")]
    Payments(PaymentsArgs),
}

#[derive(Debug, Args)]
pub struct PaymentsArgs {
    /// The customer's id (the subject of the token the orders were placed with).
    #[arg(value_name = "CUSTOMER_ID")]
    pub id: String,
    /// Most payments printed (pages of up to 100 are fetched until then).
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
}
