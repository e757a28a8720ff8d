//! The services' databases in the local PostgreSQL: one database per
//! service, `<db_prefix>_<service>`, owned by the service's owner role
//! `omnisaga_<service>` (which applies its migrations) and closed to every
//! role but that and the service's runtime role, [`runtime_role`], which may
//! connect (the service runs as it; the owner grants it the rows of its
//! tables after every migration, `omnisaga_runtime::db::grant_runtime`); and
//! the analysts' role, [`ANALYST`], which may connect to the analytics
//! database only (the analytics service grants it reads of its star schema).
//! Every role logs in with a password: `infra/scripts/ensure-postgres.sh`
//! makes them and keeps them in the PostgreSQL password file, where the
//! services' PostgreSQL client finds them.

use anyhow::{Context, Result};
use sqlx::{Connection, PgConnection};

use crate::{pg_server, Stack, StackOptions, SERVICES};

/// The analysts' read-only database role.
pub const ANALYST: &str = "omnisaga_analyst";

/// The role `service` runs as: it owns nothing.
pub fn runtime_role(service: &str) -> String {
    format!("omnisaga_{service}_runtime")
}

/// Creates every service's role and database that is missing, recreating
/// the databases when `options` ask for fresh ones.
pub(crate) async fn ensure_all(options: &StackOptions) -> Result<()> {
    let mut admin = PgConnection::connect(&format!("{}/postgres", pg_server()))
        .await
        .context("Failed to connect to PostgreSQL on 127.0.0.1:5432 (make starts it)")?;
    for (name, _) in SERVICES {
        let db = format!("{}_{name}", options.db_prefix);
        ensure_database(&mut admin, name, &db, options.fresh_databases).await?;
    }
    ensure_role(&mut admin, ANALYST).await?;
    let analytics = format!("{}_analytics", options.db_prefix);
    sqlx::query(&format!("GRANT CONNECT ON DATABASE \"{analytics}\" TO {ANALYST}"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(())
}

/// Creates the roles and the database of `service` (owned by its owner
/// role, open to its runtime role, closed to every other role), recreating
/// the database when `fresh`.
async fn ensure_database(admin: &mut PgConnection, service: &str, db: &str, fresh: bool) -> Result<()> {
    let role = format!("omnisaga_{service}");
    let runtime = runtime_role(service);
    ensure_role(admin, &role).await?;
    ensure_role(admin, &runtime).await?;
    if fresh {
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
            .execute(&mut *admin)
            .await?;
    }
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(db)
        .fetch_one(&mut *admin)
        .await?;
    if !exists {
        sqlx::query(&format!("CREATE DATABASE \"{db}\" OWNER \"{role}\""))
            .execute(&mut *admin)
            .await?;
        sqlx::query(&format!("REVOKE ALL ON DATABASE \"{db}\" FROM PUBLIC"))
            .execute(&mut *admin)
            .await?;
    }
    sqlx::query(&format!("GRANT CONNECT ON DATABASE \"{db}\" TO \"{runtime}\""))
        .execute(&mut *admin)
        .await?;
    Ok(())
}

/// Creates the login role `role` unless it exists (without a password: a
/// server that `infra/scripts/ensure-postgres.sh` set up has them all).
async fn ensure_role(admin: &mut PgConnection, role: &str) -> Result<()> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(role)
        .fetch_one(&mut *admin)
        .await?;
    if !exists {
        sqlx::query(&format!("CREATE ROLE \"{role}\" LOGIN"))
            .execute(&mut *admin)
            .await?;
    }
    Ok(())
}

impl Stack {
    /// Drops the stack's databases (for throwaway test stacks).
    pub async fn drop_databases(prefix: &str) -> Result<()> {
        let mut admin = PgConnection::connect(&format!("{}/postgres", pg_server())).await?;
        for (name, _) in SERVICES {
            sqlx::query(&format!(
                "DROP DATABASE IF EXISTS \"{prefix}_{name}\" WITH (FORCE)"
            ))
            .execute(&mut admin)
            .await?;
        }
        Ok(())
    }
}
