//! The dispatcher against the real PostgreSQL: queued messages go out in
//! batches, each once, in order per order, and a channel that refuses one
//! loses none of those sent before it.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use omnisaga_notification::{
    channel::{Channel, Message},
    dispatcher::Dispatcher,
};
use omnisaga_runtime::{outbox::OutboxWaker, testing};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Records every message it delivers; refuses the `refuse_at`-th call once.
struct Recording {
    delivered: Mutex<Vec<Uuid>>,
    calls: Mutex<usize>,
    refuse_at: usize,
}

#[async_trait]
impl Channel for Recording {
    fn name(&self) -> &'static str {
        "test"
    }
    async fn send(&self, msg: &Message) -> anyhow::Result<()> {
        let call = {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            *calls
        };
        if call == self.refuse_at {
            anyhow::bail!("gateway unavailable");
        }
        self.delivered.lock().unwrap().push(msg.notification_id);
        Ok(())
    }
}

async fn database() -> PgPool {
    testing::migrated_database("dispatch", sqlx::migrate!("./migrations"))
        .await
        .expect("test database")
}

/// Queues `n` messages for a new order, oldest first; returns their ids.
async fn queue(pool: &PgPool, n: usize) -> (Uuid, Vec<Uuid>) {
    let order = Uuid::new_v4();
    sqlx::query("INSERT INTO recipients (order_id, customer_id, order_number) VALUES ($1, 'c-1', 'OS-1')")
        .bind(order)
        .execute(pool)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO notifications (notification_id, order_id, source_event_id, source_event_type, template, created_at)
             VALUES ($1, $2, $3, 'OrderPlaced', 'order_created', now() + $4 * interval '1 millisecond')",
        )
        .bind(id)
        .bind(order)
        .bind(Uuid::new_v4())
        .bind(i as f64)
        .execute(pool)
        .await
        .unwrap();
        ids.push(id);
    }
    (order, ids)
}

#[tokio::test]
async fn a_refused_message_loses_none_sent_before_it_and_each_goes_out_once() {
    let pool = database().await;
    let (first, first_ids) = queue(&pool, 3).await;
    let (second, second_ids) = queue(&pool, 3).await;
    let channel = Arc::new(Recording {
        delivered: Mutex::default(),
        calls: Mutex::default(),
        refuse_at: 3,
    });
    let dispatcher = Dispatcher {
        pool: pool.clone(),
        waker: OutboxWaker::default(),
        channel: channel.clone(),
        notifications_topic: "omnisaga.notifications.v1".into(),
    };
    let stop = CancellationToken::new();
    let running = tokio::spawn(dispatcher.run(stop.clone()));

    testing::wait_for("every message sent", Duration::from_secs(20), || {
        let pool = pool.clone();
        async move {
            let queued: i64 =
                sqlx::query_scalar("SELECT count(*) FROM notifications WHERE status = 'QUEUED'")
                    .fetch_one(&pool)
                    .await
                    .ok()?;
            (queued == 0).then_some(())
        }
    })
    .await
    .expect("the refused message went out on a later try");
    stop.cancel();
    running.await.unwrap().unwrap();

    let delivered = channel.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), 6, "each message once: {delivered:?}");
    for ids in [&first_ids, &second_ids] {
        let of_order: Vec<Uuid> = delivered.iter().filter(|d| ids.contains(d)).copied().collect();
        assert_eq!(&of_order, ids, "an order's messages in the order queued");
    }
    for order in [first, second] {
        let versions: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM events WHERE stream_id = $1 ORDER BY version")
                .bind(format!("notifications-{order}"))
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(versions, vec![1, 2, 3], "one NotificationSent per message");
    }
    let published: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(published, 6);
}
