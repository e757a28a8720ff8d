//! The dispatcher against the real PostgreSQL: queued messages go out each
//! once, in order per order, also with two dispatchers on one database; a
//! message the channel refuses is tried again after a growing wait and is
//! dead after the last attempt, holding back only its own order's later
//! messages meanwhile. The webhook
//! channel against receivers that verify its signatures on their own: one
//! that is slow, one down for a while, one that fails one message forever,
//! and receivers on either side of a secret rotation.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use omnisaga_notification::{
    channel::{Channel, Message},
    domain::RetryPolicy,
    webhook::{self, WebhookChannel},
    workers::Dispatcher,
};
use omnisaga_runtime::{testing, work::OutboxWaker};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Records every message it delivers and when each send was tried; refuses
/// the `refuse_at`-th call once, and every call for the ids in `refuse`;
/// never answers a call for the ids in `hang`.
#[derive(Default)]
struct Recording {
    delivered: Mutex<Vec<Uuid>>,
    tried: Mutex<Vec<(Uuid, Instant)>>,
    refuse_at: Option<usize>,
    refuse: HashSet<Uuid>,
    hang: HashSet<Uuid>,
}

#[async_trait]
impl Channel for Recording {
    fn name(&self) -> &'static str {
        "test"
    }
    async fn send(&self, msg: &Message) -> anyhow::Result<()> {
        let call = {
            let mut tried = self.tried.lock().unwrap();
            tried.push((msg.notification_id, Instant::now()));
            tried.len()
        };
        if Some(call) == self.refuse_at {
            anyhow::bail!("gateway unavailable");
        }
        if self.refuse.contains(&msg.notification_id) {
            anyhow::bail!("gateway refuses this message");
        }
        if self.hang.contains(&msg.notification_id) {
            std::future::pending::<()>().await;
        }
        self.delivered.lock().unwrap().push(msg.notification_id);
        Ok(())
    }
}

impl Recording {
    /// When each send of `id` was tried, in order.
    fn tries_of(&self, id: Uuid) -> Vec<Instant> {
        let tried = self.tried.lock().unwrap();
        tried
            .iter()
            .filter(|(t, _)| *t == id)
            .map(|(_, at)| *at)
            .collect()
    }
}

async fn database() -> PgPool {
    testing::migrated_database("dispatch", sqlx::migrate!("./migrations"))
        .await
        .expect("test database")
}

/// Queues `n` messages for a new order of `customer`, oldest first (their
/// source events too: UUIDv7s, as every service makes them); returns the
/// order's and their ids.
async fn queue(pool: &PgPool, customer: &str, n: usize) -> (Uuid, Vec<Uuid>) {
    let order = Uuid::new_v4();
    sqlx::query("INSERT INTO recipients (order_id, customer_id, order_number) VALUES ($1, $2, 'OS-1')")
        .bind(order)
        .bind(customer)
        .execute(pool)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO notifications (notification_id, order_id, source_event_id, source_event_type, template, created_at)
             VALUES ($1, $2, $3, 'OrderPlaced', 'order_created', clock_timestamp() + $4 * interval '1 millisecond')",
        )
        .bind(id)
        .bind(order)
        .bind(Uuid::now_v7())
        .bind(i as f64)
        .execute(pool)
        .await
        .unwrap();
        ids.push(id);
    }
    (order, ids)
}

/// Runs a dispatcher over `pool` with `channel` and `retry` until the token is cancelled.
fn dispatch(
    pool: &PgPool,
    channel: Arc<dyn Channel>,
    retry: RetryPolicy,
) -> (CancellationToken, JoinHandle<anyhow::Result<()>>) {
    dispatch_timing_out(pool, channel, retry, Duration::from_millis(200))
}

/// [`dispatch`], a send timing out after `send_timeout`.
fn dispatch_timing_out(
    pool: &PgPool,
    channel: Arc<dyn Channel>,
    retry: RetryPolicy,
    send_timeout: Duration,
) -> (CancellationToken, JoinHandle<anyhow::Result<()>>) {
    let dispatcher = Dispatcher {
        pool: pool.clone(),
        waker: OutboxWaker::default(),
        channel,
        notifications_topic: "omnisaga.notifications.v1".into(),
        retry,
        send_timeout,
    };
    let stop = CancellationToken::new();
    let running = tokio::spawn(dispatcher.run(stop.clone()));
    (stop, running)
}

/// Waits until no message is queued any more.
async fn none_queued(pool: &PgPool) {
    testing::wait_for("no message queued", Duration::from_secs(20), || {
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
    .expect("every message sent or dead");
}

fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test]
async fn a_refused_message_loses_none_sent_before_it_and_each_goes_out_once() {
    let pool = database().await;
    let (first, first_ids) = queue(&pool, "c-1", 3).await;
    let (second, second_ids) = queue(&pool, "c-1", 3).await;
    let channel = Arc::new(Recording {
        refuse_at: Some(3),
        ..Default::default()
    });
    let retry = RetryPolicy {
        max_attempts: 5,
        base: millis(10),
        cap: millis(100),
    };
    let (stop, running) = dispatch(&pool, channel.clone(), retry);
    none_queued(&pool).await;
    stop.cancel();
    running.await.unwrap().unwrap();

    let delivered = channel.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), 6, "each message once: {delivered:?}");
    let (refused, _) = channel.tried.lock().unwrap()[2];
    assert!(first_ids.contains(&refused) || second_ids.contains(&refused));
    for ids in [&first_ids, &second_ids] {
        // The refused one went out on a later try, and the later messages
        // of its order waited for it: each order's in the order queued.
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
    let (attempts, last_error): (i32, Option<String>) =
        sqlx::query_as("SELECT attempts, last_error FROM notifications WHERE notification_id = $1")
            .bind(refused)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(attempts, 2, "refused once, then sent");
    assert_eq!(last_error.as_deref(), Some("gateway unavailable"));
}

#[tokio::test]
async fn a_message_refused_every_time_is_dead_after_the_limit_and_holds_back_only_its_orders_later_ones() {
    let pool = database().await;
    // The same customer's order: the refused message, then a later one.
    let (_, same_order) = queue(&pool, "c-1", 2).await;
    let poison = same_order[0];
    let (_, same_customer) = queue(&pool, "c-1", 1).await;
    let (_, other_customer) = queue(&pool, "c-2", 1).await;
    let others = [same_customer[0], other_customer[0]];
    let channel = Arc::new(Recording {
        refuse: HashSet::from([poison]),
        ..Default::default()
    });
    let retry = RetryPolicy {
        max_attempts: 4,
        base: millis(20),
        cap: millis(200),
    };
    let (stop, running) = dispatch(&pool, channel.clone(), retry);
    none_queued(&pool).await;

    let (status, attempts, last_error, dead_at): (String, i32, Option<String>, Option<DateTime<Utc>>) =
        sqlx::query_as(
            "SELECT status, attempts, last_error, dead_at FROM notifications WHERE notification_id = $1",
        )
        .bind(poison)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "DEAD");
    assert_eq!(attempts, 4);
    assert_eq!(last_error.as_deref(), Some("gateway refuses this message"));
    let dead_at = dead_at.expect("dead_at is set");
    assert_eq!(channel.tries_of(poison).len(), 4, "tried exactly the limit");

    for id in others {
        let (status, sent_at): (String, Option<DateTime<Utc>>) =
            sqlx::query_as("SELECT status, sent_at FROM notifications WHERE notification_id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(status, "SENT", "{id}");
        // Sent while the refused one still waited for its retries.
        assert!(sent_at.expect("sent_at is set") < dead_at, "{id} was held back");
    }
    // Its own order's later message waited for it, and went once it died.
    let (status, sent_at): (String, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT status, sent_at FROM notifications WHERE notification_id = $1")
            .bind(same_order[1])
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "SENT");
    assert!(
        sent_at.expect("sent_at is set") >= dead_at,
        "the order's next message overtook it"
    );
    assert_eq!(channel.delivered.lock().unwrap().len(), 3);

    // A dead message is never tried again by itself.
    let (_, later) = queue(&pool, "c-3", 1).await;
    none_queued(&pool).await;
    assert!(channel.delivered.lock().unwrap().contains(&later[0]));
    assert_eq!(channel.tries_of(poison).len(), 4, "no send after it died");
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_send_the_channel_never_answers_counts_as_refused_and_holds_back_no_other() {
    let pool = database().await;
    let (_, hanging) = queue(&pool, "c-1", 1).await;
    let (_, other) = queue(&pool, "c-2", 1).await;
    let channel = Arc::new(Recording {
        hang: HashSet::from([hanging[0]]),
        ..Default::default()
    });
    let retry = RetryPolicy {
        max_attempts: 2,
        base: millis(10),
        cap: millis(50),
    };
    let (stop, running) = dispatch(&pool, channel.clone(), retry);
    none_queued(&pool).await;
    stop.cancel();
    running.await.unwrap().unwrap();

    let (status, attempts, last_error): (String, i32, Option<String>) =
        sqlx::query_as("SELECT status, attempts, last_error FROM notifications WHERE notification_id = $1")
            .bind(hanging[0])
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts), ("DEAD", 2));
    assert_eq!(
        last_error.as_deref(),
        Some("the channel did not answer within 200 ms")
    );
    assert_eq!(
        *channel.delivered.lock().unwrap(),
        other,
        "the other customer's message went out"
    );
}

#[tokio::test]
async fn a_hung_channel_holds_no_transaction_and_only_for_the_send_timeout() {
    let pool = database().await;
    let (_, hanging) = queue(&pool, "c-1", 1).await;
    let channel = Arc::new(Recording {
        hang: HashSet::from([hanging[0]]),
        ..Default::default()
    });
    let retry = RetryPolicy {
        max_attempts: 1,
        base: millis(10),
        cap: millis(50),
    };
    let (stop, running) = dispatch_timing_out(&pool, channel.clone(), retry, Duration::from_secs(2));
    testing::wait_for("the send to start", Duration::from_secs(10), || {
        let started = !channel.tries_of(hanging[0]).is_empty();
        async move { started.then_some(()) }
    })
    .await
    .unwrap();
    // While the channel hangs, no connection of this database sits in a
    // transaction (the claim was committed before the send).
    let in_transaction: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(in_transaction, 0, "a transaction is held across the send");
    none_queued(&pool).await;
    let (status, _, last_error) = status_of(&pool, hanging[0]).await;
    assert_eq!(status, "DEAD");
    assert_eq!(
        last_error.as_deref(),
        Some("the channel did not answer within 2000 ms")
    );
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_dispatcher_stopped_in_the_middle_of_a_send_hands_its_claim_back() {
    let pool = database().await;
    let (_, hanging) = queue(&pool, "c-1", 1).await;
    let channel = Arc::new(Recording {
        hang: HashSet::from([hanging[0]]),
        ..Default::default()
    });
    let (_stop, running) = dispatch_timing_out(
        &pool,
        channel.clone(),
        RetryPolicy::default(),
        Duration::from_secs(60),
    );
    testing::wait_for("the send to start", Duration::from_secs(10), || {
        let started = !channel.tries_of(hanging[0]).is_empty();
        async move { started.then_some(()) }
    })
    .await
    .unwrap();
    // A graceful stop's grace period ends: the dispatcher is aborted.
    running.abort();
    let _ = running.await;
    let released = testing::wait_for("the claim handed back", Duration::from_secs(10), || {
        let (pool, id) = (pool.clone(), hanging[0]);
        async move {
            let claimed: bool = sqlx::query_scalar(
                "SELECT claimed_until IS NOT NULL FROM notifications WHERE notification_id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .ok()?;
            (!claimed).then_some(())
        }
    })
    .await;
    assert!(
        released.is_ok(),
        "{released:?}: the message waits for its claim to run out"
    );
    assert_eq!(status_of(&pool, hanging[0]).await.0, "QUEUED", "still to be sent");
}

#[tokio::test]
async fn the_wait_after_each_refusal_doubles() {
    let pool = database().await;
    let (_, ids) = queue(&pool, "c-1", 1).await;
    let channel = Arc::new(Recording {
        refuse: HashSet::from([ids[0]]),
        ..Default::default()
    });
    let base = millis(40);
    let retry = RetryPolicy {
        max_attempts: 5,
        base,
        cap: Duration::from_secs(10),
    };
    let (stop, running) = dispatch(&pool, channel.clone(), retry);
    none_queued(&pool).await;
    stop.cancel();
    running.await.unwrap().unwrap();

    let tries = channel.tries_of(ids[0]);
    assert_eq!(tries.len(), 5);
    // Each wait is at least half the doubled delay (the jitter takes off up
    // to half): 20, 40, 80 and 160 ms at least, so the waits grow.
    let waits: Vec<Duration> = tries.windows(2).map(|w| w[1] - w[0]).collect();
    for (n, wait) in waits.iter().enumerate() {
        let least = base * (1u32 << n) / 2;
        assert!(
            *wait >= least,
            "wait {} was {wait:?}, under {least:?}: {waits:?}",
            n + 1
        );
    }
}

/// A webhook receiver that verifies each request as docs/operations.md tells
/// receivers to, with the one secret it knows; answers 500 for the ids in
/// `fail`, takes a second over the first request of each id if `slow`.
#[derive(Default)]
struct Receiver {
    secret: Vec<u8>,
    fail: HashSet<Uuid>,
    slow: bool,
    /// Time taken over every request, if any.
    slow_each: Option<Duration>,
    /// Verified requests taken: (webhook-id, body).
    taken: Mutex<Vec<(Uuid, serde_json::Value)>>,
    seen: Mutex<HashSet<Uuid>>,
    /// Requests refused for their signature or timestamp.
    forged: Mutex<usize>,
}

impl Receiver {
    fn new(secret: &[u8]) -> Self {
        Self {
            secret: secret.to_vec(),
            ..Default::default()
        }
    }

    /// Whether one of the `v1,` signatures is the HMAC-SHA256 of
    /// "{id}.{timestamp}.{body}" with this receiver's secret, and the
    /// timestamp is within five minutes of now.
    fn verifies(&self, headers: &axum::http::HeaderMap, body: &[u8]) -> bool {
        use base64::Engine as _;
        use hmac::Mac as _;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
        let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
        let Ok(at) = timestamp.parse::<i64>() else {
            return false;
        };
        if (Utc::now().timestamp() - at).abs() > 300 {
            return false;
        }
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.secret).unwrap();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        let expected = mac.finalize().into_bytes();
        header("webhook-signature").split(' ').any(|sig| {
            sig.strip_prefix("v1,")
                .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
                .is_some_and(|given| given.as_slice() == expected.as_slice())
        })
    }

    /// Serves on `listener` until the test ends; its URL.
    fn serve(self: &Arc<Self>, listener: tokio::net::TcpListener) -> String {
        let url = format!("http://{}/hooks/chat", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/hooks/chat", axum::routing::post(receive))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// How many times each message id was received, as a receiver that
    /// dedupes on `webhook-id` counts them.
    fn receipts(&self) -> std::collections::HashMap<Uuid, usize> {
        let mut receipts = std::collections::HashMap::new();
        for (id, _) in self.taken.lock().unwrap().iter() {
            *receipts.entry(*id).or_default() += 1;
        }
        receipts
    }

    fn taken_ids(&self) -> HashSet<Uuid> {
        self.taken.lock().unwrap().iter().map(|(id, _)| *id).collect()
    }
}

async fn receive(
    axum::extract::State(r): axum::extract::State<Arc<Receiver>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    use axum::http::StatusCode;
    if !r.verifies(&headers, &body) {
        *r.forged.lock().unwrap() += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let id: Uuid = headers["webhook-id"].to_str().unwrap().parse().unwrap();
    if r.fail.contains(&id) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    if r.slow && r.seen.lock().unwrap().insert(id) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if let Some(each) = r.slow_each {
        tokio::time::sleep(each).await;
    }
    r.taken
        .lock()
        .unwrap()
        .push((id, serde_json::from_slice(&body).unwrap()));
    StatusCode::NO_CONTENT
}

fn webhook(url: &str, secrets: &[&[u8]]) -> Arc<dyn Channel> {
    use base64::Engine as _;
    let secrets = secrets
        .iter()
        .map(|s| format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(s)))
        .collect::<Vec<_>>()
        .join(" ");
    Arc::new(
        WebhookChannel::new(
            url.into(),
            webhook::secrets(&secrets).unwrap(),
            Duration::from_secs(5),
            &omnisaga_runtime::http_client::Trust::system(),
        )
        .unwrap(),
    )
}

const SECRET: &[u8] = b"a secret of 32 bytes, for tests!";
const NEXT_SECRET: &[u8] = b"the secret after it, 32 bytes...";

async fn status_of(pool: &PgPool, id: Uuid) -> (String, i32, Option<String>) {
    sqlx::query_as("SELECT status, attempts, last_error FROM notifications WHERE notification_id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_slow_webhook_receiver_gets_every_message_signed_with_a_retry_for_each() {
    let pool = database().await;
    let (order, ids) = queue(&pool, "c-1", 3).await;
    let receiver = Arc::new(Receiver {
        slow: true,
        ..Receiver::new(SECRET)
    });
    let url = receiver.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
    let retry = RetryPolicy {
        max_attempts: 5,
        base: millis(10),
        cap: millis(50),
    };
    let (stop, running) = dispatch(&pool, webhook(&url, &[SECRET]), retry);
    none_queued(&pool).await;
    stop.cancel();
    running.await.unwrap().unwrap();

    assert_eq!(receiver.taken_ids(), ids.iter().copied().collect());
    assert_eq!(*receiver.forged.lock().unwrap(), 0);
    for id in &ids {
        // Slower than the 200 ms the dispatcher waits: refused once, then taken.
        let (status, attempts, last_error) = status_of(&pool, *id).await;
        assert_eq!((status.as_str(), attempts), ("SENT", 2), "{id}");
        assert_eq!(
            last_error.as_deref(),
            Some("the channel did not answer within 200 ms")
        );
    }
    let (_, body) = receiver.taken.lock().unwrap()[0].clone();
    assert_eq!(body["type"], "chat.message");
    assert_eq!(body["order_id"], order.to_string());
    assert_eq!(body["customer_id"], "c-1");
    assert_eq!(body["template"], "order_created");
    assert!(body["text"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
}

#[tokio::test]
async fn a_webhook_receiver_down_for_a_while_gets_every_message_once_it_is_back() {
    let pool = database().await;
    // Two orders' messages: an order's second would wait for its first.
    let (_, first) = queue(&pool, "c-1", 1).await;
    let (_, second) = queue(&pool, "c-2", 1).await;
    let ids = [first[0], second[0]];
    // Its address, with nothing listening on it yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let retry = RetryPolicy {
        max_attempts: 50,
        base: millis(20),
        cap: millis(100),
    };
    let url = format!("http://{addr}/hooks/chat");
    let (stop, running) = dispatch(&pool, webhook(&url, &[SECRET]), retry);
    testing::wait_for(
        "two refused sends of each message",
        Duration::from_secs(20),
        || {
            let pool = pool.clone();
            async move {
                let refused: i64 = sqlx::query_scalar("SELECT min(attempts)::bigint FROM notifications")
                    .fetch_one(&pool)
                    .await
                    .ok()?;
                (refused >= 2).then_some(())
            }
        },
    )
    .await
    .unwrap();
    let receiver = Arc::new(Receiver::new(SECRET));
    receiver.serve(tokio::net::TcpListener::bind(addr).await.unwrap());
    none_queued(&pool).await;
    stop.cancel();
    running.await.unwrap().unwrap();

    assert_eq!(receiver.taken_ids(), ids.iter().copied().collect());
    for id in &ids {
        let (status, _, last_error) = status_of(&pool, *id).await;
        assert_eq!(status, "SENT");
        assert!(
            last_error
                .as_deref()
                .is_some_and(|e| e.contains("did not answer")),
            "{last_error:?}"
        );
    }
}

#[tokio::test]
async fn a_message_a_webhook_receiver_always_fails_is_dead_and_the_others_go_on() {
    let pool = database().await;
    let (_, ids) = queue(&pool, "c-1", 3).await;
    let receiver = Arc::new(Receiver {
        fail: HashSet::from([ids[1]]),
        ..Receiver::new(SECRET)
    });
    let url = receiver.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
    let retry = RetryPolicy {
        max_attempts: 3,
        base: millis(10),
        cap: millis(50),
    };
    let (stop, running) = dispatch(&pool, webhook(&url, &[SECRET]), retry);
    none_queued(&pool).await;
    stop.cancel();
    running.await.unwrap().unwrap();

    let (status, attempts, last_error) = status_of(&pool, ids[1]).await;
    assert_eq!((status.as_str(), attempts), ("DEAD", 3));
    assert_eq!(
        last_error.as_deref(),
        Some("the webhook receiver answered 500 Internal Server Error")
    );
    assert_eq!(receiver.taken_ids(), HashSet::from([ids[0], ids[2]]));
}

#[tokio::test]
async fn during_a_secret_rotation_receivers_knowing_either_secret_accept_and_then_only_the_new() {
    let old = Arc::new(Receiver::new(SECRET));
    let new = Arc::new(Receiver::new(NEXT_SECRET));
    let old_url = old.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
    let new_url = new.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
    let msg = Message {
        notification_id: Uuid::new_v4(),
        order_id: Uuid::new_v4(),
        customer_id: "c-1".into(),
        template: "shipped".into(),
        text: "Shipped".into(),
    };
    // Both secrets active: a signature for each.
    for url in [&old_url, &new_url] {
        webhook(url, &[SECRET, NEXT_SECRET]).send(&msg).await.unwrap();
    }
    // The old one retired: a receiver still on it refuses.
    let refused = webhook(&old_url, &[NEXT_SECRET]).send(&msg).await.unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");
    webhook(&new_url, &[NEXT_SECRET]).send(&msg).await.unwrap();
    assert_eq!(old.taken.lock().unwrap().len(), 1);
    assert_eq!(*old.forged.lock().unwrap(), 1);
    assert_eq!(new.taken.lock().unwrap().len(), 2);
    assert_eq!(*new.forged.lock().unwrap(), 0);
}

/// Queues `messages` messages for each of `orders` new orders, interleaved
/// (the first of each order, then the second of each, ...), so that every
/// batch a dispatcher takes holds messages of every order; returns each
/// order's message ids, oldest first.
async fn queue_interleaved(pool: &PgPool, orders: usize, messages: usize) -> Vec<(Uuid, Vec<Uuid>)> {
    let mut queued = Vec::new();
    for _ in 0..orders {
        let order = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO recipients (order_id, customer_id, order_number) VALUES ($1, 'c-1', 'OS-1')",
        )
        .bind(order)
        .execute(pool)
        .await
        .unwrap();
        queued.push((order, Vec::new()));
    }
    for _ in 0..messages {
        for (order, ids) in &mut queued {
            let id = Uuid::new_v4();
            sqlx::query(
                "INSERT INTO notifications (notification_id, order_id, source_event_id, source_event_type, template, created_at)
                 VALUES ($1, $2, $3, 'OrderPlaced', 'order_created', clock_timestamp())",
            )
            .bind(id)
            .bind(*order)
            .bind(Uuid::now_v7())
            .execute(pool)
            .await
            .unwrap();
            ids.push(id);
        }
    }
    queued
}

#[tokio::test]
async fn two_dispatchers_on_one_database_send_each_message_once_and_each_orders_in_order() {
    let pool = database().await;
    let queued = queue_interleaved(&pool, 20, 4).await;
    // A receiver that takes a little while over each request, so the two
    // dispatchers' sends overlap.
    let receiver = Arc::new(Receiver {
        slow_each: Some(millis(5)),
        ..Receiver::new(SECRET)
    });
    let url = receiver.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
    let retry = RetryPolicy {
        max_attempts: 5,
        base: millis(10),
        cap: millis(50),
    };
    let (stop_a, running_a) = dispatch(&pool, webhook(&url, &[SECRET]), retry);
    let (stop_b, running_b) = dispatch(&pool, webhook(&url, &[SECRET]), retry);
    none_queued(&pool).await;
    stop_a.cancel();
    stop_b.cancel();
    running_a.await.unwrap().unwrap();
    running_b.await.unwrap().unwrap();

    // Receipts at the channel, per message id: each exactly once.
    let receipts = receiver.receipts();
    let twice: Vec<_> = receipts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "received other than once: {twice:?}");
    assert_eq!(receipts.len(), 80, "every message received");
    let taken = receiver.taken.lock().unwrap().clone();
    for (order, ids) in &queued {
        let received: Vec<Uuid> = taken
            .iter()
            .filter(|(_, body)| body["order_id"] == order.to_string())
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(&received, ids, "order {order}'s messages in the order queued");
        let versions: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM events WHERE stream_id = $1 ORDER BY version")
                .bind(format!("notifications-{order}"))
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(versions, vec![1, 2, 3, 4], "one NotificationSent per message");
    }
}

/// A new order of customer `c-1`, whose recipient is known.
async fn new_order(pool: &PgPool) -> Uuid {
    let order = Uuid::new_v4();
    sqlx::query("INSERT INTO recipients (order_id, customer_id, order_number) VALUES ($1, 'c-1', 'OS-1')")
        .bind(order)
        .execute(pool)
        .await
        .unwrap();
    order
}

/// Queues `template`'s message for `order`, its source event `event_id`,
/// queued `queued_secs_ago` seconds ago; returns its id.
async fn queue_step(
    pool: &PgPool,
    order: Uuid,
    template: &str,
    event_id: Uuid,
    queued_secs_ago: f64,
) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO notifications (notification_id, order_id, source_event_id, source_event_type, template, created_at)
         VALUES ($1, $2, $3, 'Step', $4, clock_timestamp() - $5 * interval '1 second')",
    )
    .bind(id)
    .bind(order)
    .bind(event_id)
    .bind(template)
    .bind(queued_secs_ago)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// Waits until the channel delivered `n` messages; returns them.
async fn delivered(channel: &Recording, n: usize) -> Vec<Uuid> {
    testing::wait_for("the messages delivered", Duration::from_secs(20), || async {
        let delivered = channel.delivered.lock().unwrap().clone();
        (delivered.len() >= n).then_some(delivered)
    })
    .await
    .expect("delivered")
}

#[tokio::test]
async fn a_backlog_read_out_of_order_reaches_the_customer_in_the_sagas_order() {
    let pool = database().await;
    let order = new_order(&pool).await;
    // The steps as their services made them, in the saga's order...
    let [created, paid, packed, shipped] = [(); 4].map(|_| Uuid::now_v7());
    // ...and as a consumer reading four topics' backlogs queued them: the
    // shipped news first, the packed news not yet read.
    let shipped_msg = queue_step(&pool, order, "shipped", shipped, 0.0).await;
    let paid_msg = queue_step(&pool, order, "payment_confirmed", paid, 0.0).await;
    let created_msg = queue_step(&pool, order, "order_created", created, 0.0).await;
    let channel = Arc::new(Recording::default());
    let retry = RetryPolicy::default();
    let (stop, running) = dispatch(&pool, channel.clone(), retry);
    assert_eq!(delivered(&channel, 2).await, [created_msg, paid_msg]);
    // The shipped news waits for the packed news it follows.
    let held: String = sqlx::query_scalar("SELECT status FROM notifications WHERE notification_id = $1")
        .bind(shipped_msg)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(held, "QUEUED", "shipped before packed");
    assert_eq!(
        channel.delivered.lock().unwrap().len(),
        2,
        "shipped before packed"
    );
    let packed_msg = queue_step(&pool, order, "ready_for_shipment", packed, 0.0).await;
    assert_eq!(
        delivered(&channel, 4).await,
        [created_msg, paid_msg, packed_msg, shipped_msg]
    );
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_step_whose_predecessor_never_comes_is_sent_after_the_wait() {
    let pool = database().await;
    let order = new_order(&pool).await;
    // The packed news is parked as a dead letter: the shipped news, queued
    // longer ago than the wait, goes out without it.
    let waited = omnisaga_notification::domain::PREDECESSOR_WAIT.as_secs_f64() + 1.0;
    let created_msg = queue_step(&pool, order, "order_created", Uuid::now_v7(), waited).await;
    let paid_msg = queue_step(&pool, order, "payment_confirmed", Uuid::now_v7(), waited).await;
    let shipped_msg = queue_step(&pool, order, "shipped", Uuid::now_v7(), waited).await;
    let channel = Arc::new(Recording::default());
    let (stop, running) = dispatch(&pool, channel.clone(), RetryPolicy::default());
    assert_eq!(delivered(&channel, 3).await, [created_msg, paid_msg, shipped_msg]);
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_payment_delayed_notice_read_after_the_payment_is_confirmed_is_never_sent() {
    let pool = database().await;
    let order = new_order(&pool).await;
    // The order service's timer fired after the payment was authorised and
    // the parcel packed, but before it read either: its notice's event is
    // later than theirs. A backlog brings every step at once.
    let [created, paid, packed, delayed, shipped] = [(); 5].map(|_| Uuid::now_v7());
    let created_msg = queue_step(&pool, order, "order_created", created, 0.0).await;
    let paid_msg = queue_step(&pool, order, "payment_confirmed", paid, 0.0).await;
    let packed_msg = queue_step(&pool, order, "ready_for_shipment", packed, 0.0).await;
    let delayed_msg = queue_step(&pool, order, "payment_delayed", delayed, 0.0).await;
    let shipped_msg = queue_step(&pool, order, "shipped", shipped, 0.0).await;
    let channel = Arc::new(Recording::default());
    let (stop, running) = dispatch(&pool, channel.clone(), RetryPolicy::default());
    assert_eq!(
        delivered(&channel, 4).await,
        [created_msg, paid_msg, packed_msg, shipped_msg]
    );
    none_queued(&pool).await;
    stop.cancel();
    running.await.unwrap().unwrap();
    let (status, attempts, _) = status_of(&pool, delayed_msg).await;
    assert_eq!((status.as_str(), attempts), ("STALE", 0));
    assert!(
        channel.tries_of(delayed_msg).is_empty(),
        "never offered to the channel"
    );
    assert_eq!(channel.delivered.lock().unwrap().len(), 4);
}
