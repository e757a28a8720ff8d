//! The audit log's retention: whole months are dropped by the database's
//! owner running `audit_log_rotate`, never by a DELETE, and the log stays
//! append-only in every partition, old or new.

use anyhow::Result;
use omnisaga_runtime::testing;
use sqlx::PgPool;

async fn insert_at(pool: &PgPool, subject: &str, at: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (subject, scopes, method, route, path, request_id, status, outcome, at)
         VALUES ($1, '', 'POST', '/v1/x', '/v1/x', 'r', 200, 'ok', $2::timestamptz)",
    )
    .bind(subject)
    .bind(at)
    .execute(pool)
    .await?;
    Ok(())
}

async fn subjects(pool: &PgPool) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT subject FROM audit_log ORDER BY at")
        .fetch_all(pool)
        .await?)
}

#[tokio::test]
async fn rotation_drops_whole_months_past_the_retention_and_makes_the_months_ahead() -> Result<()> {
    let pool = testing::migrated_database("audit_retention", sqlx::migrate!("./tests/migrations")).await?;
    insert_at(&pool, "long-ago", "2001-01-15T00:00:00Z").await?;
    insert_at(&pool, "now", &chrono::Utc::now().to_rfc3339()).await?;

    // Three years on, keeping twelve months: what the migration made (the
    // earlier rows' partition and the months ahead of then) has aged out.
    let later = chrono::Utc::now() + chrono::Duration::days(3 * 366);
    let done: Vec<String> = sqlx::query_scalar("SELECT audit_log_rotate(12, 2, $1)")
        .bind(later)
        .fetch_all(&pool)
        .await?;
    assert!(done.iter().any(|d| d == "dropped audit_log_before"), "{done:?}");
    let month = later.format("%Y%m").to_string();
    assert!(
        done.iter().any(|d| *d == format!("created audit_log_{month}")),
        "{done:?}"
    );
    insert_at(&pool, "later", &later.to_rfc3339()).await?;
    assert_eq!(subjects(&pool).await?, ["later"], "{done:?}");
    let part: String = sqlx::query_scalar("SELECT tableoid::regclass::text FROM audit_log")
        .fetch_one(&pool)
        .await?;
    assert_eq!(part, format!("audit_log_{month}"));

    // Run again: nothing more to do.
    let again: Vec<String> = sqlx::query_scalar("SELECT audit_log_rotate(12, 2, $1)")
        .bind(later)
        .fetch_all(&pool)
        .await?;
    assert!(again.is_empty(), "{again:?}");

    // Still append-only, through the parent and in each partition.
    insert_at(&pool, "in-new-month", &later.to_rfc3339()).await?;
    for change in [
        "UPDATE audit_log SET outcome = 'x'".to_owned(),
        "DELETE FROM audit_log".to_owned(),
        "TRUNCATE audit_log".to_owned(),
        format!("TRUNCATE audit_log_{month}"),
        "TRUNCATE audit_log_default".to_owned(),
    ] {
        assert!(
            sqlx::query(&change).execute(&pool).await.is_err(),
            "{change} went through"
        );
    }
    assert_eq!(subjects(&pool).await?.len(), 2);

    let refused = sqlx::query("SELECT audit_log_rotate(0)").execute(&pool).await;
    assert!(refused.is_err(), "a retention of no month is refused");
    Ok(())
}
