//! The analytics database: every event received (`received_events`), and
//! the star schema analysts query (migrations/1001_star_schema.sql,
//! docs/analytics.md): each stage event (`stage_events`), each order
//! (`fact_orders`), its lines (`fact_order_lines`) and each payment
//! (`fact_payments`), with the dimensions
//! they name, written in `record` (the orders' rows in `fact_orders`) as
//! events arrive. The API's and the dashboard's queries are in `figures`.
//! Every statement of the service is in this module.

use sqlx::{PgPool, Postgres, Transaction};

mod export;
mod fact_orders;
mod figures;
pub mod log;
mod payments;
mod record;

pub use export::*;
pub use figures::*;
pub use payments::{customer_payments, payment_of, CustomerPayment, PaymentFact};
pub use record::*;

/// A read-only transaction that sees one snapshot, so that every figure of
/// one answer comes from the same moment.
pub async fn snapshot(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The tables and views analysts read (docs/analytics.md); the operational
/// tables (outbox, inbox, dead letters with whole events) are not among them.
pub const ANALYST_TABLES: [&str; 11] = [
    "fact_orders",
    "fact_payments",
    "stage_events",
    "fact_stages",
    "fact_order_lines",
    "received_events",
    "dim_channel",
    "dim_stage",
    "dim_payment_outcome",
    "dim_day",
    "dim_sku",
];

/// The columns of `received_events` analysts read: all but `envelope`, the
/// whole event (a customer's details among them), kept for rebuilds.
pub const ANALYST_LOG_COLUMNS: [&str; 7] = [
    "event_id",
    "order_id",
    "event_type",
    "occurred_at",
    "topic",
    "recorded_at",
    "log_position",
];

/// Lets `role` read [`ANALYST_TABLES`] (of `received_events`, its
/// [`ANALYST_LOG_COLUMNS`]) and nothing else, when the role exists (the
/// deployment creates it); whether it did. Granting again is harmless, so
/// every start does it, for tables a migration added too; it takes back the
/// whole `received_events` an earlier release granted.
pub async fn grant_analyst_reads(pool: &PgPool, role: &str) -> Result<bool, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(role)
        .fetch_one(pool)
        .await?;
    if exists {
        // `role` is checked to be a plain identifier by the configuration.
        let tables: Vec<&str> = ANALYST_TABLES
            .into_iter()
            .filter(|t| *t != "received_events")
            .collect();
        let mut tx = pool.begin().await?;
        for sql in [
            format!("GRANT SELECT ON {} TO \"{role}\"", tables.join(", ")),
            // Revoking the table's privilege takes its columns' too.
            format!("REVOKE SELECT ON received_events FROM \"{role}\""),
            format!(
                "GRANT SELECT ({}) ON received_events TO \"{role}\"",
                ANALYST_LOG_COLUMNS.join(", ")
            ),
        ] {
            sqlx::query(&sql).execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    Ok(exists)
}
