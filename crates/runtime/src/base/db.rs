//! The PostgreSQL pool and migrations: the runtime's own tables (event store,
//! outbox, inbox) first, then the service's.

use std::{str::FromStr, sync::OnceLock, time::Duration};

use anyhow::{Context, Result};
use sqlx::{
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};

pub use super::db_spans::{
    count_statement, counted, set_spans, spans_on, statements_so_far, STATEMENT_COUNT,
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

/// A connection handed out of a pool is checked with a round trip first
/// only when it sat idle this long: one that was returned moments ago was
/// checked then (the pool pings every connection given back, and closes a
/// broken one), while one that idled through a database restart is found
/// broken here and replaced. Checking every one cost a round trip per
/// acquire, about 35 per order.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Connects with the default [`Timeouts`], retrying for a while so a
/// service may start before the database.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool> {
    connect_with(url, max_connections, Timeouts::default()).await
}

/// Connects, every connection bounded by `timeouts`, retrying for a while
/// so a service may start before the database.
pub async fn connect_with(url: &str, max_connections: u32, timeouts: Timeouts) -> Result<PgPool> {
    let options = timeouts.apply(PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid URL")?);
    let _ = SERVER.set(Server {
        namespace: options.get_database().unwrap_or_default().to_owned(),
        address: options.get_host().to_owned(),
        port: options.get_port(),
    });
    let mut delay = Duration::from_millis(200);
    let mut attempts = 0;
    loop {
        match PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_AFTER_IDLE {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
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

/// The service's database as its spans name it: the first pool's.
struct Server {
    namespace: String,
    address: String,
    port: u16,
}

static SERVER: OnceLock<Server> = OnceLock::new();

/// The client span of one statement (or a commit) on the service's
/// database, named and labelled by OpenTelemetry's database conventions
/// (`summary` is e.g. `INSERT events`; `db.namespace` the database,
/// `server.address` and `server.port` where it is). The statement text is
/// not recorded: it is fixed, and its parameters may hold customer data.
///
/// The statement is counted in its step's count either way
/// ([`counted`]); with `TRACE_DB_SPANS=off` the span is a disabled one,
/// which costs next to nothing.
pub fn span(summary: &'static str) -> tracing::Span {
    count_statement();
    if !spans_on() {
        return tracing::Span::none();
    }
    let server = SERVER.get();
    tracing::info_span!(
        target: "omnisaga::db",
        "db",
        otel.name = summary,
        otel.kind = "client",
        db.system.name = "postgresql",
        db.query.summary = summary,
        db.namespace = server.map_or("", |s| s.namespace.as_str()),
        server.address = server.map_or("", |s| s.address.as_str()),
        server.port = server.map_or(0, |s| i64::from(s.port)),
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

/// How a service reaches its database (`DATABASE_URL`,
/// `DATABASE_MIGRATION_URL`, `DATABASE_MAX_CONNECTIONS` and the
/// [`Timeouts`]).
#[derive(Clone)]
pub struct Settings {
    /// The database as the role the service runs as.
    pub url: String,
    /// The database as its owner, for the migrations.
    pub migration_url: Option<String>,
    pub max_connections: u32,
    pub timeouts: Timeouts,
}

/// Brings the service's database up to date and connects its pool: over
/// `DATABASE_MIGRATION_URL` when there is one, else over the pool itself
/// (a role that owns its database).
///
/// With an owner's URL, the owner connects first: it applies the
/// migrations, runs `as_owner` (e.g. grants of its own), grants the role
/// `DATABASE_URL` names CONNECT on the database and its rights with
/// [`grant_runtime`], and closes its connection. Only then does the pool
/// connect, so a runtime role made with nothing but LOGIN (a managed role of
/// the PostgreSQL operator, say) needs no grant from anyone else.
pub async fn prepare<F>(settings: &Settings, service: Migrator, as_owner: F) -> Result<PgPool>
where
    F: for<'a> FnOnce(&'a PgPool) -> futures::future::BoxFuture<'a, Result<()>>,
{
    let connect_runtime = || connect_with(&settings.url, settings.max_connections, settings.timeouts);
    let Some(owner_url) = &settings.migration_url else {
        let pool = connect_runtime().await?;
        migrate(&pool, service).await?;
        as_owner(&pool).await?;
        return Ok(pool);
    };
    let role = PgConnectOptions::from_str(&settings.url)
        .context("DATABASE_URL is not a PostgreSQL URL")?
        .get_username()
        .to_owned();
    let owner = connect(owner_url, 1)
        .await
        .context("Failed to connect over DATABASE_MIGRATION_URL")?;
    let (owner_role, database): (String, String) =
        sqlx::query_as("SELECT current_user::text, current_database()::text")
            .fetch_one(&owner)
            .await?;
    anyhow::ensure!(
        owner_role != role,
        "DATABASE_MIGRATION_URL and DATABASE_URL both log in as {role}: the service must run as a role that does not own its database"
    );
    migrate(&owner, service).await?;
    as_owner(&owner).await?;
    let grant = format!(
        "GRANT CONNECT ON DATABASE {} TO {}",
        quote_ident(&database),
        quote_ident(&role)
    );
    sqlx::query(&grant)
        .execute(&owner)
        .await
        .with_context(|| format!("Failed to let DATABASE_URL's role {role} connect: {grant}"))?;
    grant_runtime(&owner, &role).await?;
    owner.close().await;
    connect_runtime().await
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What the role a service runs as may do, granted by the database's owner
/// after every migration: read and write the rows of every table and use
/// its sequences, but only read and append to the audit log and only read
/// the migrations' record, and make tables in the schema `rebuild` only (a
/// rebuild's copies). It owns nothing else, so it can neither alter nor
/// drop a live table, nor disable a trigger, nor grant itself more.
pub async fn grant_runtime(owner: &PgPool, role: &str) -> Result<()> {
    let role = quote_ident(role);
    let statements = [
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role}"),
        format!("REVOKE ALL ON audit_log, _sqlx_migrations FROM {role}"),
        format!("GRANT SELECT, INSERT ON audit_log TO {role}"),
        format!("GRANT SELECT ON _sqlx_migrations TO {role}"),
        // A rebuild's copies of the read models (crate::es::rebuild).
        format!("GRANT USAGE, CREATE ON SCHEMA rebuild TO {role}"),
    ];
    let mut tx = owner.begin().await?;
    for statement in &statements {
        sqlx::query(statement)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("Failed to grant the service's role its rights: {statement}"))?;
    }
    tx.commit().await?;
    Ok(())
}
