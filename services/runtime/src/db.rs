//! The PostgreSQL pool and migrations: the runtime's own tables (event store,
//! outbox, inbox) first, then the service's.

use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::{migrate::Migrator, postgres::PgPoolOptions, PgPool};

/// Connects, retrying for a while so a service may start before the database.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool> {
    let mut delay = Duration::from_millis(200);
    let mut attempts = 0;
    loop {
        match PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
        {
            Ok(pool) => return Ok(pool),
            Err(e) if attempts < 10 => {
                tracing::warn!(error = %e, "database not reachable yet, retrying");
                attempts += 1;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(3));
            }
            Err(e) => return Err(e).context("Failed to connect to PostgreSQL"),
        }
    }
}

/// The client span of one statement (or a commit) on the service's
/// database, named and labelled by OpenTelemetry's database conventions
/// (`summary` is e.g. `INSERT events`). The statement text is not recorded:
/// it is fixed, and its parameters may hold customer data.
pub fn span(summary: &'static str) -> tracing::Span {
    tracing::info_span!(
        "db",
        otel.name = summary,
        otel.kind = "client",
        db.system.name = "postgresql",
        db.query.summary = summary,
    )
}

/// Applies the runtime's migrations and then `service` (whose versions must
/// start at 1000 so the two sets never collide).
pub async fn migrate(pool: &PgPool, mut service: Migrator) -> Result<()> {
    let mut runtime = sqlx::migrate!("./migrations");
    runtime.set_ignore_missing(true);
    runtime
        .run(pool)
        .await
        .context("Failed to apply the runtime migrations")?;
    service.set_ignore_missing(true);
    service
        .run(pool)
        .await
        .context("Failed to apply the service migrations")?;
    Ok(())
}
