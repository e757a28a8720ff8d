//! The PostgreSQL pool and migrations: the runtime's own tables (event store,
//! outbox, inbox) first, then the service's.

use std::{str::FromStr, time::Duration};

use anyhow::{Context, Result};
use sqlx::{
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};

/// What the server bounds on every connection of a service's pools, set
/// when each connection starts (`DATABASE_STATEMENT_TIMEOUT_MS`,
/// `DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS`; 0 is no bound). A statement
/// that runs longer is cancelled, and a transaction left idle longer (its
/// holder hung, paused or waiting on something it should not wait on in a
/// transaction) ends with its session, so the rows it locked are free again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// PostgreSQL's `statement_timeout`.
    pub statement: Duration,
    /// PostgreSQL's `idle_in_transaction_session_timeout`.
    pub idle_in_transaction: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            statement: Duration::from_secs(30),
            idle_in_transaction: Duration::from_secs(30),
        }
    }
}

impl Timeouts {
    /// `options` with both timeouts as the connection's startup settings.
    fn apply(&self, options: PgConnectOptions) -> PgConnectOptions {
        options.options([
            ("statement_timeout", self.statement.as_millis().to_string()),
            (
                "idle_in_transaction_session_timeout",
                self.idle_in_transaction.as_millis().to_string(),
            ),
        ])
    }
}

/// Connects with the default [`Timeouts`], retrying for a while so a
/// service may start before the database.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool> {
    connect_with(url, max_connections, Timeouts::default()).await
}

/// Connects, every connection bounded by `timeouts`, retrying for a while
/// so a service may start before the database.
pub async fn connect_with(url: &str, max_connections: u32, timeouts: Timeouts) -> Result<PgPool> {
    let options = timeouts.apply(PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid URL")?);
    let mut delay = Duration::from_millis(200);
    let mut attempts = 0;
    loop {
        match PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
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
/// start at 1000 so the two sets never collide), on a connection without
/// the statement timeout (a migration may rewrite a large table, and waits
/// for another instance's migrations), which is closed afterwards.
pub async fn migrate(pool: &PgPool, mut service: Migrator) -> Result<()> {
    let mut conn = pool.acquire().await?.detach();
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut conn)
        .await?;
    let mut runtime = sqlx::migrate!("./migrations");
    runtime.set_ignore_missing(true);
    runtime
        .run(&mut conn)
        .await
        .context("Failed to apply the runtime migrations")?;
    service.set_ignore_missing(true);
    service
        .run(&mut conn)
        .await
        .context("Failed to apply the service migrations")?;
    let _ = sqlx::Connection::close(conn).await;
    Ok(())
}
