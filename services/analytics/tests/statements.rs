//! What analytics' consumer costs the database for one order's six events:
//! its handler against a migrated database, each event in a transaction of
//! its own as the consumer applies a lone record, or all in one as it
//! applies a fetched batch, and the handler's statements counted by
//! `pg_stat_statements` for that database alone
//! (`infra/postgres/omnisaga.conf` preloads it). A day or a SKU it wrote once
//! costs no statement again; a remembered one that a rollback took away is
//! written again on the retry. A batch leaves the rows its events leave one
//! by one (batch.rs).

#[path = "statements/batch.rs"]
mod batch;

use omnisaga_analytics::handlers::SagaEvents;
use omnisaga_proto::v1::{
    envelope::Payload, Channel, LineItem, Money, OrderPlaced, OrderReadyForShipment, OrderShipped,
    PaymentAuthorized, PickTaskCreated, StockReserved,
};
use omnisaga_runtime::{
    consumer::{Handler, HandlerError, Incoming},
    testing, TraceContext,
};
use sqlx::PgPool;
use uuid::Uuid;

/// The statements the handler sent, those on analytics' own tables (a
/// foreign key's check, run inside one, is not counted: `toplevel`).
const HANDLER_STATEMENTS: &str = "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND query ~ '(received_events|stage_events|fact_order|dim_day|dim_sku)'
       AND query NOT LIKE '%pg_stat_statements%' AND toplevel";

/// A migrated analytics database whose statements are counted from now on.
pub async fn database() -> PgPool {
    let pool = testing::migrated_database("analytics", sqlx::migrate!("./migrations"))
        .await
        .expect("test database");
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&pool)
        .await
        .expect("pg_stat_statements (preloaded by infra/postgres/omnisaga.conf)");
    pool
}

/// Starts counting this database's statements again.
async fn reset(pool: &PgPool) {
    sqlx::query(
        "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)",
    )
    .execute(pool)
    .await
    .unwrap();
}

async fn handler_statements(pool: &PgPool) -> i64 {
    sqlx::query_scalar(HANDLER_STATEMENTS)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// `payload` of `order_id` as its topic would bring it.
pub fn incoming(order_id: Uuid, producer: &str, payload: Payload) -> Incoming {
    Incoming {
        envelope: testing::envelope(producer, &order_id.to_string(), payload),
        topic: format!("omnisaga.{producer}.v1"),
        partition: 0,
        offset: 0,
        trace: TraceContext::default(),
    }
}

/// The six events of one order that went through: placed with one line of
/// `SKU-TEA`, stock reserved, pick task created, paid, ready, shipped.
fn one_order(order_id: Uuid) -> Vec<Incoming> {
    let id = order_id.to_string();
    let eur = |minor_units| {
        Some(Money {
            minor_units,
            currency: "EUR".into(),
        })
    };
    vec![
        incoming(
            order_id,
            "order",
            Payload::OrderPlaced(OrderPlaced {
                order_id: id.clone(),
                channel: Channel::Web.into(),
                items: vec![LineItem {
                    sku: "SKU-TEA".into(),
                    name: "Tea".into(),
                    quantity: 2,
                    unit_price: eur(450),
                }],
                total: eur(900),
                ..Default::default()
            }),
        ),
        incoming(
            order_id,
            "warehouse",
            Payload::StockReserved(StockReserved {
                order_id: id.clone(),
                ..Default::default()
            }),
        ),
        incoming(
            order_id,
            "warehouse",
            Payload::PickTaskCreated(PickTaskCreated {
                order_id: id.clone(),
                ..Default::default()
            }),
        ),
        incoming(
            order_id,
            "payment",
            Payload::PaymentAuthorized(PaymentAuthorized {
                order_id: id.clone(),
                attempt: 1,
                ..Default::default()
            }),
        ),
        incoming(
            order_id,
            "warehouse",
            Payload::OrderReadyForShipment(OrderReadyForShipment {
                order_id: id.clone(),
                ..Default::default()
            }),
        ),
        incoming(
            order_id,
            "warehouse",
            Payload::OrderShipped(OrderShipped {
                order_id: id,
                ..Default::default()
            }),
        ),
    ]
}

/// Handles each of `events` in a transaction of its own and commits it.
pub async fn one_by_one(pool: &PgPool, handler: &SagaEvents, events: &[Incoming]) {
    for event in events {
        let mut tx = pool.begin().await.unwrap();
        handler.handle(&mut tx, event).await.expect("handled");
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn one_orders_six_events_cost_fifteen_statements_once_its_day_and_sku_are_known() {
    let pool = database().await;
    let handler = SagaEvents::default();
    // The first order brings today and its SKU.
    one_by_one(&pool, &handler, &one_order(Uuid::new_v4())).await;
    reset(&pool).await;

    let order_id = Uuid::new_v4();
    one_by_one(&pool, &handler, &one_order(order_id)).await;
    // Each event: received_events. The placement: its line, stage_events,
    // fact_orders. Paid, ready, shipped: stage_events and fact_orders, the
    // times reached coming back from it.
    assert_eq!(handler_statements(&pool).await, 6 + 3 + 3 * 2);
    let (shipped, lines): (bool, i64) = sqlx::query_as(
        "SELECT shipped_at IS NOT NULL AND ready_at IS NOT NULL AND paid_at IS NOT NULL AND placed_at IS NOT NULL,
                (SELECT count(*) FROM fact_order_lines l WHERE l.order_id = o.order_id)
         FROM fact_orders o WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((shipped, lines), (true, 1));
}

#[tokio::test]
async fn a_day_and_sku_remembered_from_a_rolled_back_transaction_are_written_again_on_the_retry() {
    let pool = database().await;
    let handler = SagaEvents::default();
    let placed = &one_order(Uuid::new_v4())[0];
    let mut tx = pool.begin().await.unwrap();
    handler.handle(&mut tx, placed).await.expect("handled");
    tx.rollback().await.unwrap();

    let again = &one_order(Uuid::new_v4())[0];
    let mut tx = pool.begin().await.unwrap();
    match handler.handle(&mut tx, again).await {
        Err(HandlerError::Transient(_)) => {}
        other => panic!("expected a transient failure (the day is gone), got {other:?}"),
    }
    drop(tx);
    one_by_one(&pool, &handler, std::slice::from_ref(again)).await;
    let (days, skus): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM dim_day), (SELECT count(*) FROM dim_sku)")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((days, skus), (1, 1));
}

#[tokio::test]
async fn one_orders_six_events_fetched_together_cost_four_statements() {
    let pool = database().await;
    let handler = SagaEvents::default();
    one_by_one(&pool, &handler, &one_order(Uuid::new_v4())).await;
    reset(&pool).await;

    let events = one_order(Uuid::new_v4());
    let together: Vec<&Incoming> = events.iter().collect();
    let mut tx = pool.begin().await.unwrap();
    handler.handle_batch(&mut tx, &together).await.expect("handled");
    tx.commit().await.unwrap();
    // received_events, fact_order_lines, stage_events, fact_orders.
    assert_eq!(handler_statements(&pool).await, 4);
}
