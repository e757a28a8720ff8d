//! What the dispatcher's looks for messages cost the database: each is one
//! statement committed on its own, which also says how long until a refused
//! message falls due (no BEGIN, COMMIT or ROLLBACK around it, no second
//! query); and after sending, the dispatcher looks again only when the
//! claim may have left a message sendable. Recording a sent message is one
//! statement with its stream version, then the event.

use std::{sync::Arc, time::Duration};

use omnisaga_notification::{channel::LogChannel, domain::RetryPolicy, workers::Dispatcher};
use omnisaga_runtime::{
    testing::{self, Statements},
    work::{Claimed, OutboxWaker, Then, Worker},
};
use sqlx::PgPool;
use uuid::Uuid;

async fn dispatcher(name: &str) -> Dispatcher {
    let pool = testing::migrated_database(name, sqlx::migrate!("./migrations"))
        .await
        .expect("test database");
    Dispatcher {
        pool,
        waker: OutboxWaker::default(),
        channel: Arc::new(LogChannel),
        notifications_topic: "omnisaga.notifications.v1".into(),
        retry: RetryPolicy::default(),
        send_timeout: Duration::from_secs(1),
    }
}

/// Queues a message of a new order whose recipient is known, due after
/// `wait` (a refused one waiting for its next attempt) or at once; returns
/// the order.
async fn queue(pool: &PgPool, wait: Option<Duration>) -> Uuid {
    let order = Uuid::new_v4();
    sqlx::query("INSERT INTO recipients (order_id, customer_id, order_number) VALUES ($1, 'c-1', 'OS-1')")
        .bind(order)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO notifications (notification_id, order_id, source_event_id, source_event_type, template,
                                    next_attempt_at)
         VALUES ($1, $2, $3, 'OrderPlaced', 'order_created', clock_timestamp() + $4 * interval '1 millisecond')",
    )
    .bind(Uuid::new_v4())
    .bind(order)
    .bind(Uuid::now_v7())
    .bind(wait.map(|w| w.as_millis() as f64))
    .execute(pool)
    .await
    .unwrap();
    order
}

/// Queues the next message of `order`, behind the first.
async fn behind(pool: &PgPool, order: Uuid) {
    sqlx::query(
        "INSERT INTO notifications (notification_id, order_id, source_event_id, source_event_type, template)
         VALUES ($1, $2, $3, 'PaymentAuthorized', 'payment_confirmed')",
    )
    .bind(Uuid::new_v4())
    .bind(order)
    .bind(Uuid::now_v7())
    .execute(pool)
    .await
    .unwrap();
}

/// Looks for messages, returning what it found and the statements it ran.
async fn look(dispatcher: &Dispatcher) -> (Claimed<Vec<omnisaga_notification::store::Queued>>, Statements) {
    let before = Statements::now(&dispatcher.pool).await.unwrap();
    let claimed = dispatcher.claim().await.expect("looked");
    let after = Statements::now(&dispatcher.pool).await.unwrap();
    (claimed, after.since(&before))
}

#[tokio::test]
async fn a_claim_and_an_empty_look_are_one_statement_each() {
    let d = dispatcher("claim_statements").await;
    queue(&d.pool, None).await;
    let (claimed, ran) = look(&d).await;
    let Claimed::Work { work, then } = claimed else {
        panic!("a message is queued");
    };
    assert_eq!(work.len(), 1);
    assert_eq!(ran.total(), 1, "one statement claims:\n{ran}");
    assert!(
        matches!(then, Then::Wait(_)),
        "nothing queued behind it: no look after sending it ({then:?})"
    );

    let (claimed, ran) = look(&d).await;
    assert!(matches!(claimed, Claimed::Wait(_)), "the message is claimed");
    assert_eq!(ran.total(), 1, "one statement finds nothing:\n{ran}");
}

#[tokio::test]
async fn an_empty_look_waits_for_the_first_refused_message_to_fall_due() {
    let d = dispatcher("claim_statements_due").await;
    // Due in 900 ms: longer than the setup takes on a busy machine, and
    // under the dispatcher's longest wait (1 s), so the wait says when.
    let due = Duration::from_millis(900);
    let queued = std::time::Instant::now();
    queue(&d.pool, Some(due)).await;
    queue(&d.pool, Some(Duration::from_secs(60))).await;
    let (claimed, ran) = look(&d).await;
    let since = queued.elapsed();
    let Claimed::Wait(wait) = claimed else {
        panic!("nothing is due yet");
    };
    // What is left of the first one's 900 ms: no more, and no less than
    // what had not passed here by the time the look came back.
    assert!(
        wait <= due && wait + since + Duration::from_millis(5) >= due,
        "until the first falls due: {wait:?}, {since:?} after queueing it"
    );
    assert_eq!(ran.total(), 1, "one statement claims and says when:\n{ran}");
}

#[tokio::test]
async fn a_message_with_another_of_its_order_behind_it_is_followed_by_a_look() {
    let d = dispatcher("claim_statements_behind").await;
    let order = queue(&d.pool, None).await;
    behind(&d.pool, order).await;
    let (claimed, _) = look(&d).await;
    let Claimed::Work { work, then } = claimed else {
        panic!("a message is queued");
    };
    assert_eq!(work.len(), 1, "one per order");
    assert_eq!(
        then,
        Then::LookAgain,
        "the next of its order is sendable once it is sent"
    );
}

#[tokio::test]
async fn a_sent_message_is_recorded_with_its_event_in_four_statements() {
    let d = dispatcher("record_statements").await;
    let order = queue(&d.pool, None).await;
    let Claimed::Work { work, .. } = d.claim().await.expect("looked") else {
        panic!("a message is queued");
    };
    let before = Statements::now(&d.pool).await.unwrap();
    d.work(work).await.expect("sent and recorded");
    let ran = Statements::now(&d.pool).await.unwrap().since(&before);
    // BEGIN; the mark, which reads the stream's version; the event with its
    // outbox row; COMMIT.
    assert_eq!(ran.total(), 4, "{ran}");
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'NotificationSent' AND version = 1",
    )
    .bind(format!("notifications-{order}"))
    .fetch_one(&d.pool)
    .await
    .unwrap();
    assert_eq!(recorded, 1);
}
