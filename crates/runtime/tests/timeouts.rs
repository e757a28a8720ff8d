//! The server's bounds on every connection of a pool (`db::Timeouts`): a
//! statement that runs too long is cancelled, and a transaction left idle
//! too long ends with its session, so the rows it locked are free again.

use std::time::Duration;

use anyhow::Result;
use omnisaga_runtime::{db, testing};

#[tokio::test]
async fn every_connection_of_a_pool_carries_both_timeouts_by_default() -> Result<()> {
    let pool = db::connect(&testing::fresh_database("timeouts").await?, 2).await?;
    for (setting, expected) in [
        ("statement_timeout", "30s"),
        ("idle_in_transaction_session_timeout", "30s"),
    ] {
        let value: String = sqlx::query_scalar(&format!("SHOW {setting}"))
            .fetch_one(&pool)
            .await?;
        assert_eq!(value, expected, "{setting}");
    }
    Ok(())
}

#[tokio::test]
async fn a_statement_running_too_long_is_cancelled() -> Result<()> {
    let timeouts = db::Timeouts {
        statement: Duration::from_millis(200),
        ..Default::default()
    };
    let pool = db::connect_with(&testing::fresh_database("timeouts").await?, 1, timeouts).await?;
    let err = sqlx::query("SELECT pg_sleep(5)")
        .execute(&pool)
        .await
        .expect_err("a five-second statement under a 200 ms bound");
    let code = err
        .as_database_error()
        .and_then(|e| e.code().map(|c| c.into_owned()));
    assert_eq!(code.as_deref(), Some("57014"), "query_canceled: {err}");
    Ok(())
}

#[tokio::test]
async fn a_transaction_left_idle_ends_and_frees_its_row_locks() -> Result<()> {
    let url = testing::fresh_database("timeouts").await?;
    let timeouts = db::Timeouts {
        idle_in_transaction: Duration::from_millis(300),
        ..Default::default()
    };
    let pool = db::connect_with(&url, 1, timeouts).await?;
    let other = db::connect(&url, 1).await?;
    sqlx::query("CREATE TABLE held (id INT PRIMARY KEY)")
        .execute(&other)
        .await?;
    sqlx::query("INSERT INTO held VALUES (1)").execute(&other).await?;

    // A holder that locks a row and then waits on something else.
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT id FROM held WHERE id = 1 FOR UPDATE")
        .execute(&mut *tx)
        .await?;
    // Another transaction gets the row once the idle one's session ended.
    testing::wait_for(
        "the idle transaction's lock to go",
        Duration::from_secs(10),
        || async {
            let mut t = other.begin().await.ok()?;
            let got = sqlx::query("SELECT id FROM held WHERE id = 1 FOR UPDATE NOWAIT")
                .execute(&mut *t)
                .await
                .is_ok();
            got.then_some(())
        },
    )
    .await?;
    assert!(
        sqlx::query("SELECT 1").execute(&mut *tx).await.is_err(),
        "the idle transaction was ended"
    );
    Ok(())
}
