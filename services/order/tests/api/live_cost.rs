//! What live order updates cost the saga's write path: nothing. An event
//! appended to the order database runs no statement beyond the append (no
//! trigger on `events`, no NOTIFY), whether a stream is open or not; the
//! streams' poller reads the store instead (`live.rs`).

use omnisaga_proto::v1::Envelope;
use omnisaga_runtime::{
    store,
    testing::{self, Statements},
};
use uuid::Uuid;

#[tokio::test]
async fn appending_an_order_event_runs_no_statement_beyond_the_append() {
    let pool = testing::migrated_database("order-live-cost", sqlx::migrate!("./migrations"))
        .await
        .expect("test database");
    let triggers: Vec<String> = sqlx::query_scalar(
        "SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'events'::regclass AND NOT tgisinternal",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(triggers, Vec::<String>::new(), "no trigger on events");

    let order = Uuid::now_v7();
    let before = Statements::now(&pool).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO order_view (order_id, order_number, customer_id, status, created_at, updated_at)
         VALUES ($1, 'OS-1', 'c-1', 'PLACED', now(), now())",
    )
    .bind(order)
    .execute(&mut *tx)
    .await
    .unwrap();
    let placed = Envelope {
        order_id: order.to_string(),
        event_type: "OrderPlaced".into(),
        ..Default::default()
    };
    store::append(&mut tx, &format!("order-{order}"), 0, &[placed])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let ran = Statements::now(&pool).await.unwrap().since(&before);
    assert_eq!(
        ran.total(),
        4,
        "BEGIN, the order's view, the append, COMMIT; nothing at commit:\n{ran}"
    );
}
