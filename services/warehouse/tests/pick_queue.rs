//! The pick queue against the real PostgreSQL: what a picker finds when it
//! looks, in one statement.

use std::time::Duration;

use omnisaga_proto::v1::{envelope::Payload, LineItem, OrderPlaced, PaymentAuthorized};
use omnisaga_runtime::{
    testing::{self, Statements},
    work::{Claimed, Then, Worker},
};
use omnisaga_warehouse::store::{self, Claim};
use omnisaga_warehouse::workers::Pickers;
use sqlx::PgPool;
use uuid::Uuid;

/// The lease a claimed task to pick gets.
const LEASE: Duration = Duration::from_secs(60);

async fn queue() -> PgPool {
    testing::migrated_database("pick_queue", sqlx::migrate!("./migrations"))
        .await
        .expect("test database")
}

/// Queues a task in `status`, due `due_in_ms` from now (negative: overdue).
async fn task(pool: &PgPool, status: &str, due_in_ms: i64) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO pick_tasks (pick_task_id, order_id, items, status, due_at)
         VALUES ($1, $2, '[]', $3, clock_timestamp() + $4 * interval '1 millisecond')",
    )
    .bind(id)
    .bind(Uuid::new_v4())
    .bind(status)
    .bind(due_in_ms as f64)
    .execute(pool)
    .await
    .expect("task queued");
    id
}

#[tokio::test]
async fn an_empty_queue_has_nothing_to_claim() {
    let pool = queue().await;
    task(&pool, "WAITING_PAYMENT", -1_000).await;
    task(&pool, "SHIPPED", -1_000).await;
    let mut tx = pool.begin().await.unwrap();
    assert!(matches!(
        store::claim_next_task(&mut *tx, LEASE).await.unwrap(),
        Claim::Empty
    ));
}

#[tokio::test]
async fn a_task_not_yet_due_tells_how_long_to_wait() {
    let pool = queue().await;
    task(&pool, "PACKED", 5_000).await;
    task(&pool, "READY", 60_000).await;
    let mut tx = pool.begin().await.unwrap();
    match store::claim_next_task(&mut *tx, LEASE).await.unwrap() {
        Claim::NotYet(wait) => assert!(
            wait > Duration::from_secs(4) && wait <= Duration::from_secs(5),
            "waits for the first task to fall due, not the later one: {wait:?}"
        ),
        _ => panic!("nothing is due yet"),
    }
}

#[tokio::test]
async fn the_task_due_first_is_claimed_and_says_whether_another_is_due() {
    let pool = queue().await;
    let first = task(&pool, "READY", -2_000).await;
    let second = task(&pool, "PACKED", -1_000).await;
    task(&pool, "READY", 60_000).await;

    let mut one = pool.begin().await.unwrap();
    let Claim::Due {
        task: claimed, more, ..
    } = store::claim_next_task(&mut *one, LEASE).await.unwrap()
    else {
        panic!("two tasks are due");
    };
    assert_eq!(claimed.pick_task_id, first);
    assert!(!claimed.packed);
    assert!(more, "the second task is due as well");

    // A second picker skips the task the first one holds.
    let mut two = pool.begin().await.unwrap();
    let Claim::Due { task: claimed, .. } = store::claim_next_task(&mut *two, LEASE).await.unwrap() else {
        panic!("the second task is free");
    };
    assert_eq!(claimed.pick_task_id, second);
    assert!(claimed.packed);

    // A third finds only the task not yet due.
    let mut three = pool.begin().await.unwrap();
    assert!(matches!(
        store::claim_next_task(&mut *three, LEASE).await.unwrap(),
        Claim::NotYet(_)
    ));
}

#[tokio::test]
async fn the_only_due_task_has_no_other_behind_it() {
    let pool = queue().await;
    let only = task(&pool, "READY", -1).await;
    let mut tx = pool.begin().await.unwrap();
    let Claim::Due {
        task: claimed, more, ..
    } = store::claim_next_task(&mut *tx, LEASE).await.unwrap()
    else {
        panic!("the task is due");
    };
    assert_eq!(claimed.pick_task_id, only);
    assert!(!more);
}

#[tokio::test]
async fn a_picker_stopped_in_the_middle_of_picking_hands_its_task_back() {
    let pool = queue().await;
    let id = task(&pool, "READY", -1_000).await;
    let pickers = Pickers {
        pool: pool.clone(),
        waker: Default::default(),
        warehouse_topic: "omnisaga.warehouse.v1".into(),
        // Picking takes a minute: the picker is stopped in the middle.
        pick: Duration::from_secs(60),
        pack: Duration::ZERO,
        ship: Duration::ZERO,
        order_shipped_version: 2,
        packed: Default::default(),
    };
    let Claimed::Work { work, .. } = pickers.claim().await.expect("claimed") else {
        panic!("the task is due");
    };
    // The picker's task has begun picking before it is stopped: a task
    // aborted before its first poll never began, and on a busy machine
    // this test's look below may end without ever yielding to it. One
    // thread: its first poll goes on into the pick, which takes the
    // hand-back guard before its first wait, before this one resumes.
    let (began, beginning) = tokio::sync::oneshot::channel();
    let picking = tokio::spawn({
        let pickers = pickers.clone();
        async move {
            let _ = began.send(());
            pickers.work(work).await
        }
    });
    beginning.await.expect("the picking began");
    // Leased while it is picked: no other picker finds it due.
    let mut tx = pool.begin().await.unwrap();
    assert!(matches!(
        store::claim_next_task(&mut *tx, LEASE).await.unwrap(),
        Claim::NotYet(_)
    ));
    tx.rollback().await.unwrap();
    // A graceful stop's grace period ends: the picker is aborted.
    picking.abort();
    let _ = picking.await;
    let due = testing::wait_for("the task handed back", Duration::from_secs(10), || {
        let pool = pool.clone();
        async move {
            let mut tx = pool.begin().await.ok()?;
            match store::claim_next_task(&mut *tx, LEASE).await.ok()? {
                Claim::Due { task, .. } => Some(task.pick_task_id),
                _ => None,
            }
        }
    })
    .await;
    assert_eq!(due.ok(), Some(id), "the task waits for its lease to run out");
}

/// The warehouse's consumer applies `payload` of `order_id`, sent by
/// `producer`, and commits.
async fn consume(pool: &PgPool, producer: &str, order_id: Uuid, payload: Payload) {
    use omnisaga_runtime::consumer::{Handler, Incoming};
    let incoming = Incoming {
        envelope: testing::envelope(producer, &order_id.to_string(), payload),
        topic: "omnisaga.orders.v1".into(),
        partition: 0,
        offset: 0,
        trace: Default::default(),
    };
    let handler = omnisaga_warehouse::handlers::SagaEvents {
        warehouse_topic: "omnisaga.warehouse.v1".into(),
    };
    let mut tx = pool.begin().await.unwrap();
    handler.handle(&mut tx, &incoming).await.expect("handled");
    tx.commit().await.unwrap();
}

/// A paid order's task, due to pick, and a picker that ships `ship` after
/// packing.
async fn paid_order(ship: Duration) -> (PgPool, Uuid, Pickers) {
    let pool = queue().await;
    sqlx::query("INSERT INTO stock (sku, on_hand) VALUES ('SKU-LAMP', 10)")
        .execute(&pool)
        .await
        .unwrap();
    let order_id = Uuid::new_v4();
    let placed = OrderPlaced {
        order_id: order_id.to_string(),
        items: vec![LineItem {
            sku: "SKU-LAMP".into(),
            quantity: 1,
            ..Default::default()
        }],
        ..Default::default()
    };
    consume(&pool, "order", order_id, Payload::OrderPlaced(placed)).await;
    let paid = PaymentAuthorized {
        order_id: order_id.to_string(),
        ..Default::default()
    };
    consume(&pool, "payment", order_id, Payload::PaymentAuthorized(paid)).await;
    let pickers = Pickers {
        pool: pool.clone(),
        waker: Default::default(),
        warehouse_topic: "omnisaga.warehouse.v1".into(),
        pick: Duration::ZERO,
        pack: Duration::ZERO,
        ship,
        order_shipped_version: 2,
        packed: Default::default(),
    };
    (pool, order_id, pickers)
}

#[tokio::test]
async fn a_picker_claims_in_one_statement_ships_in_the_claims_transaction_and_then_waits() {
    let (pool, order_id, pickers) = paid_order(Duration::ZERO).await;

    let before = Statements::now(&pool).await.unwrap();
    let Claimed::Work { work, then } = pickers.claim().await.expect("claimed") else {
        panic!("the paid order's task is due");
    };
    let claim = Statements::now(&pool).await.unwrap().since(&before);
    assert_eq!(
        claim.total(),
        1,
        "one statement claims and leases the task:\n{claim}"
    );
    assert_eq!(then, Then::LookAgain, "its own task falls due to ship");
    pickers.work(work).await.expect("picked and packed");

    let Claimed::Work { work, then } = pickers.claim().await.expect("claimed") else {
        panic!("the packed task is due at once");
    };
    assert!(
        matches!(then, Then::Wait(_)),
        "nothing else queued: no look after it ({then:?})"
    );
    pickers.work(work).await.expect("shipped");
    let all = Statements::now(&pool).await.unwrap().since(&before);
    assert_eq!(
        (all.total(), all.starting("BEGIN")),
        (14, 2),
        "claim 1, pack 6, claim and ship 7:\n{all}"
    );
    let status: String = sqlx::query_scalar("SELECT status FROM pick_tasks WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "SHIPPED");
}

#[tokio::test]
async fn a_picker_that_packed_waits_for_its_parcel_and_claims_it_in_the_transaction_it_ships_in() {
    let (pool, _, pickers) = paid_order(Duration::from_secs(3600)).await;
    let Claimed::Work { work, .. } = pickers.claim().await.expect("claimed") else {
        panic!("the paid order's task is due");
    };
    pickers.work(work).await.expect("picked and packed");
    let Claimed::Wait(_) = pickers.claim().await.expect("looked") else {
        panic!("the parcel ships in an hour");
    };
    // The hour has passed.
    sqlx::query("UPDATE pick_tasks SET due_at = clock_timestamp()")
        .execute(&pool)
        .await
        .unwrap();
    let before = Statements::now(&pool).await.unwrap();
    // Held (its transaction open) while the statements are counted.
    let Claimed::Work { work: _locked, .. } = pickers.claim().await.expect("claimed") else {
        panic!("the packed task is due");
    };
    let claim = Statements::now(&pool).await.unwrap().since(&before);
    assert_eq!(
        claim.total(),
        2,
        "BEGIN and the claim, no look outside it first:\n{claim}"
    );
}
