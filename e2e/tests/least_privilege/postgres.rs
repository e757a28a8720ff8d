//! What the PostgreSQL roles may do: see the test's documentation.

use anyhow::{bail, ensure, Context, Result};
use omnisaga_e2e::{pg_password, runtime_role, Stack, ANALYST, SERVICES};
use sqlx::{postgres::PgConnectOptions, Connection, PgConnection};

pub(crate) async fn databases(stack: &Stack) -> Result<()> {
    passwords_required(&runtime_role("payment"), &stack.database("payment")).await?;
    passwords_required("postgres", "postgres").await?;
    for (role_of, _) in SERVICES {
        let role = runtime_role(role_of);
        no_powers(&role).await?;
        no_powers(&format!("omnisaga_{role_of}")).await?;
        for (db_of, _) in SERVICES {
            let db = stack.database(db_of);
            if role_of == db_of {
                reads_its_tables(&role, &db).await?;
                cannot_undo_the_audit(&role, &db).await?;
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

/// `role` is refused over TCP without a password and with a wrong one
/// (SQLSTATE 28P01), and let in with its own.
async fn passwords_required(role: &str, db: &str) -> Result<()> {
    let options = || {
        PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(5432)
            .username(role)
            .database(db)
    };
    let password = pg_password(role)?;
    for (what, attempt) in [
        ("no password", options()),
        ("a wrong password", options().password(&format!("{password}x"))),
    ] {
        match PgConnection::connect_with(&attempt).await {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("28P01") => {}
            Ok(_) => bail!("{role} logged in over TCP with {what}"),
            Err(other) => bail!("{role} with {what} failed, but not as refused: {other}"),
        }
    }
    PgConnection::connect_with(&options().password(&password))
        .await
        .with_context(|| format!("{role} logs in with its password"))?
        .close()
        .await?;
    Ok(())
}

/// The runtime `role` cannot undo the audit log of `db`: it may append to
/// it, but not disable its triggers, grant itself DELETE, delete or drop it.
async fn cannot_undo_the_audit(role: &str, db: &str) -> Result<()> {
    let mut conn = connect(role, db).await?;
    let owns: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public' AND c.relowner = current_user::regrole)
              + (SELECT count(*) FROM pg_database
                 WHERE datname = current_database() AND datdba = current_user::regrole)",
    )
    .fetch_one(&mut conn)
    .await?;
    ensure!(owns == 0, "{role} owns {owns} objects of {db}");
    for statement in [
        "ALTER TABLE audit_log DISABLE TRIGGER ALL",
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "DROP TABLE audit_log",
    ] {
        match sqlx::query(statement).execute(&mut conn).await {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => {}
            Ok(_) => bail!("{role} on {db}: {statement} succeeded"),
            Err(other) => bail!("{role} on {db}: {statement} failed, but not for lack of privilege: {other}"),
        }
    }
    // Granting what one lacks grants nothing (PostgreSQL only warns).
    let _ = sqlx::query(&format!(
        "GRANT DELETE, UPDATE, TRUNCATE ON audit_log TO \"{role}\""
    ))
    .execute(&mut conn)
    .await;
    let may: bool = sqlx::query_scalar(
        "SELECT has_table_privilege('audit_log', 'DELETE')
             OR has_table_privilege('audit_log', 'UPDATE')
             OR has_table_privilege('audit_log', 'TRUNCATE')",
    )
    .fetch_one(&mut conn)
    .await?;
    ensure!(
        !may,
        "{role} granted itself DELETE, UPDATE or TRUNCATE on {db}.audit_log"
    );
    conn.close().await?;
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
