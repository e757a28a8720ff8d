//! Each service's PostgreSQL role reaches its own database only: after the
//! stack started and every service migrated its tables, each role connects
//! to its own database and reads its tables, and is refused (SQLSTATE
//! 42501, permission denied for database) by every other service's, so the
//! payment role cannot read the order tables. The analysts' role connects
//! to the analytics database only, and no role holds a power beyond its
//! grants (superuser, creating databases or roles, bypassing row security).

use anyhow::{bail, ensure, Context, Result};
use omnisaga_e2e::{Stack, StackOptions, ANALYST, SERVICES};
use sqlx::{Connection, PgConnection};

async fn start_stack() -> Result<Stack> {
    Stack::start(StackOptions::for_test()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_connects_to_its_own_database_only() -> Result<()> {
    let stack = start_stack().await?;
    let result = check(&stack).await;
    stack.finish(result.is_ok()).await?;
    result
}

async fn check(stack: &Stack) -> Result<()> {
    for (role_of, _) in SERVICES {
        let role = format!("omnisaga_{role_of}");
        no_powers(&role).await?;
        for (db_of, _) in SERVICES {
            let db = stack.database(db_of);
            if role_of == db_of {
                reads_its_tables(&role, &db).await?;
            } else {
                refused(&role, &db).await?;
            }
        }
    }
    no_powers(ANALYST).await?;
    for (db_of, _) in SERVICES {
        let db = stack.database(db_of);
        if db_of == "analytics" {
            connect(ANALYST, &db)
                .await
                .with_context(|| format!("{ANALYST} connects to {db}"))?
                .close()
                .await?;
        } else {
            refused(ANALYST, &db).await?;
        }
    }
    Ok(())
}

/// `role` holds no power beyond its grants: no superuser, no creating
/// databases or roles, no bypassing row security.
async fn no_powers(role: &str) -> Result<()> {
    let mut admin = PgConnection::connect(&format!("{}/postgres", omnisaga_e2e::pg_server())).await?;
    let powers: bool = sqlx::query_scalar(
        "SELECT rolsuper OR rolcreatedb OR rolcreaterole OR rolbypassrls OR rolreplication
         FROM pg_roles WHERE rolname = $1",
    )
    .bind(role)
    .fetch_one(&mut admin)
    .await
    .with_context(|| format!("the role {role} exists"))?;
    ensure!(!powers, "{role} is a superuser or may create databases or roles");
    admin.close().await?;
    Ok(())
}

async fn connect(role: &str, db: &str) -> Result<PgConnection, sqlx::Error> {
    PgConnection::connect(&format!("postgres://{role}@127.0.0.1:5432/{db}")).await
}

/// `role` connects to `db` and reads every table it holds.
async fn reads_its_tables(role: &str, db: &str) -> Result<()> {
    let mut conn = connect(role, db)
        .await
        .with_context(|| format!("{role} connects to its own database {db}"))?;
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            .fetch_all(&mut conn)
            .await?;
    ensure!(
        !tables.is_empty(),
        "{db} has no tables: the service did not migrate it"
    );
    for table in &tables {
        sqlx::query(&format!("SELECT count(*) FROM \"{table}\""))
            .fetch_one(&mut conn)
            .await
            .with_context(|| format!("{role} reads {db}.{table}"))?;
    }
    conn.close().await?;
    Ok(())
}

/// `role` may not connect to `db`: PostgreSQL refuses it for lack of the
/// CONNECT privilege, not for any other reason.
async fn refused(role: &str, db: &str) -> Result<()> {
    match connect(role, db).await {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => {
            ensure!(
                e.message().contains("permission denied for database"),
                "{role} on {db}: {}",
                e.message()
            );
            Ok(())
        }
        Ok(_) => bail!("{role} may connect to {db}"),
        Err(other) => bail!("{role} on {db} failed, but not for lack of privilege: {other}"),
    }
}
