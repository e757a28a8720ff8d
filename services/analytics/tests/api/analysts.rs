//! The analysts' database role: it reads the log (`received_events`) but
//! not the whole events it keeps for rebuilds.

use omnisaga_analytics::store;
use uuid::Uuid;

use crate::helpers::spawn_app;

#[tokio::test]
async fn analysts_read_the_log_but_not_the_envelopes_it_keeps() {
    let app = spawn_app().await;
    let role = format!("test_analyst_{}", &Uuid::new_v4().simple().to_string()[..12]);
    sqlx::query(&format!("CREATE ROLE {role}"))
        .execute(&app.pool)
        .await
        .unwrap();
    // An earlier release granted the whole table.
    sqlx::query(&format!("GRANT SELECT ON received_events TO {role}"))
        .execute(&app.pool)
        .await
        .unwrap();
    assert!(store::grant_analyst_reads(&app.pool, &role).await.unwrap());
    let as_analyst = |sql: &'static str| {
        let (pool, role) = (app.pool.clone(), role.clone());
        async move {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(&format!("SET LOCAL ROLE {role}"))
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(sql).execute(&mut *tx).await
        }
    };
    as_analyst("SELECT event_id, event_type, occurred_at, log_position FROM received_events")
        .await
        .unwrap();
    as_analyst("SELECT count(*) FROM fact_orders").await.unwrap();
    let refused = as_analyst("SELECT envelope FROM received_events")
        .await
        .unwrap_err();
    assert_eq!(
        refused.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("42501"),
        "{refused}"
    );
    for sql in [format!("DROP OWNED BY {role}"), format!("DROP ROLE {role}")] {
        sqlx::query(&sql).execute(&app.pool).await.unwrap();
    }
}
