//! A service that runs as a role of its own and migrates as its database's
//! owner (`DATABASE_MIGRATION_URL`, `db::prepare`): the runtime role gets
//! the rows of the tables but cannot undo the audit log, and one role for
//! both is refused before anything is migrated. A runtime role made with
//! nothing but LOGIN (as an operator's managed role is) is granted CONNECT
//! by the owner before the service's pool connects.

use anyhow::{ensure, Result};
use omnisaga_runtime::{config::CommonConfig, db, testing};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// An empty database of its own, closed to PUBLIC, and a login role (that
/// may connect to it when `may_connect`): the role's URL, the database's
/// (as the tests' administrator), and the role's name.
async fn runtime_role(may_connect: bool) -> Result<(String, String, String)> {
    let admin_url = testing::fresh_database("roles").await?;
    let (server, db) = admin_url.rsplit_once('/').expect("a database URL");
    let role = format!("test_runtime_{}", &Uuid::new_v4().simple().to_string()[..12]);
    let password = Uuid::new_v4().simple().to_string();
    let mut admin = PgConnection::connect(&format!("{}/postgres", testing::pg_server())).await?;
    let mut statements = vec![
        format!("CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'"),
        format!("REVOKE ALL ON DATABASE \"{db}\" FROM PUBLIC"),
    ];
    if may_connect {
        statements.push(format!("GRANT CONNECT ON DATABASE \"{db}\" TO \"{role}\""));
    }
    for sql in statements {
        sqlx::query(&sql).execute(&mut admin).await?;
    }
    admin.close().await?;
    let host = server.rsplit_once('@').map_or(server, |(_, host)| host);
    Ok((
        format!("postgres://{role}:{password}@{host}/{db}"),
        admin_url,
        role,
    ))
}

async fn drop_role(admin_url: &str, role: &str) -> Result<()> {
    let (_, db) = admin_url.rsplit_once('/').expect("a database URL");
    let mut admin = PgConnection::connect(&format!("{}/postgres", testing::pg_server())).await?;
    sqlx::query(&format!("DROP DATABASE \"{db}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    sqlx::query(&format!("DROP ROLE \"{role}\""))
        .execute(&mut admin)
        .await?;
    Ok(())
}

fn refused(result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>, what: &str) -> Result<()> {
    match result {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => Ok(()),
        other => anyhow::bail!("{what}: {other:?}"),
    }
}

#[tokio::test]
async fn the_runtime_role_gets_rows_and_cannot_undo_the_audit() -> Result<()> {
    let (url, admin_url, role) = runtime_role(true).await?;
    let config = CommonConfig {
        database_url: url,
        database_migration_url: Some(admin_url.clone()),
        ..testing::config("roles").await?
    };
    let pool = db::prepare(&config.database(), sqlx::migrate!("./tests/migrations"), |_| {
        Box::pin(async { Ok(()) })
    })
    .await?;
    let mut conn = pool.acquire().await?;
    let rows: bool = sqlx::query_scalar(
        "SELECT has_table_privilege('outbox', 'SELECT, INSERT, UPDATE, DELETE')
            AND has_table_privilege('audit_log', 'SELECT, INSERT')",
    )
    .fetch_one(&mut *conn)
    .await?;
    ensure!(rows, "the runtime role lacks the rows of its tables");
    for statement in [
        "ALTER TABLE audit_log DISABLE TRIGGER ALL",
        "DELETE FROM audit_log",
        "UPDATE audit_log SET status = 0",
        "TRUNCATE audit_log",
        "DROP TABLE audit_log",
        "DELETE FROM _sqlx_migrations",
        "CREATE TABLE sneaky (id int)",
    ] {
        refused(sqlx::query(statement).execute(&mut *conn).await, statement)?;
    }
    let _ = sqlx::query(&format!("GRANT DELETE ON audit_log TO \"{role}\""))
        .execute(&mut *conn)
        .await;
    let may_delete: bool = sqlx::query_scalar("SELECT has_table_privilege('audit_log', 'DELETE')")
        .fetch_one(&mut *conn)
        .await?;
    ensure!(
        !may_delete,
        "the runtime role granted itself DELETE on the audit log"
    );
    drop(conn);
    pool.close().await;
    drop_role(&admin_url, &role).await
}

#[tokio::test]
async fn one_role_for_both_urls_is_refused_before_migrating() -> Result<()> {
    let config = testing::config("roles").await?;
    let config = CommonConfig {
        database_migration_url: Some(config.database_url.clone()),
        ..config
    };
    let error = db::prepare(&config.database(), sqlx::migrate!("./tests/migrations"), |_| {
        Box::pin(async { Ok(()) })
    })
    .await
    .expect_err("the same role in both URLs");
    ensure!(error.to_string().contains("both log in as"), "{error:#}");
    let mut conn = PgConnection::connect(&config.database_url).await?;
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        .fetch_one(&mut conn)
        .await?;
    ensure!(tables == 0, "{tables} tables were created");
    Ok(())
}

#[tokio::test]
async fn a_runtime_role_with_only_login_is_let_in_by_the_owner() -> Result<()> {
    let (url, admin_url, role) = runtime_role(false).await?;
    let config = CommonConfig {
        database_url: url.clone(),
        database_migration_url: Some(admin_url.clone()),
        ..testing::config("roles").await?
    };
    let refused_before = PgConnection::connect(&url).await;
    ensure!(
        refused_before.is_err(),
        "the role connected before any grant: the test proves nothing"
    );
    let pool = db::prepare(&config.database(), sqlx::migrate!("./tests/migrations"), |_| {
        Box::pin(async { Ok(()) })
    })
    .await?;
    let rows: bool = sqlx::query_scalar("SELECT has_table_privilege('outbox', 'SELECT, INSERT')")
        .fetch_one(&pool)
        .await?;
    ensure!(rows, "the runtime role lacks the rows of its tables");
    pool.close().await;
    drop_role(&admin_url, &role).await
}
