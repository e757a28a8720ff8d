//! Provider calls made outside the consumer's transaction, against the real
//! PostgreSQL: the consumer only queues them, a caller makes each and records
//! the answer, and an approval whose recording rolled back is voided once
//! the order no longer needs paying.

use std::sync::Arc;

use chrono::Utc;
use omnisaga_payment::{
    handlers::OrderEvents,
    orders::OrderService,
    provider::{Provider, ProviderConfig},
    workers::ProviderCalls,
};
use omnisaga_proto::v1::{envelope::Payload, Money, OrderCancelled, OrderPlaced, StockReleased};
use omnisaga_runtime::{
    consumer::{Handler, Incoming},
    db,
    event::{self, EventMeta},
    http_client::Trust,
    testing,
    work::OutboxWaker,
    work::{Claimed, Worker},
    TraceContext,
};
use sqlx::PgPool;
use uuid::Uuid;

const PAYMENTS: &str = "omnisaga.payments.v1";

struct Payment {
    pool: PgPool,
    provider: Arc<Provider>,
    handler: OrderEvents,
    calls: ProviderCalls,
    order_id: String,
}

impl Payment {
    async fn new(name: &str) -> Self {
        Self::asking(
            name,
            OrderService::new("http://127.0.0.1:9".into(), None, &Trust::system()).unwrap(),
        )
        .await
    }

    /// A payment service that asks `orders` for tokens the events lack.
    async fn asking(name: &str, orders: OrderService) -> Self {
        Self::with(name, orders, ProviderConfig::default(), db::Timeouts::default()).await
    }

    /// With its provider as `provider` says, on a pool bounded by `timeouts`.
    async fn with(
        name: &str,
        orders: OrderService,
        provider: ProviderConfig,
        timeouts: db::Timeouts,
    ) -> Self {
        let url = testing::fresh_database(name).await.expect("test database");
        let pool = db::connect_with(&url, 4, timeouts).await.expect("pool");
        db::migrate(&pool, sqlx::migrate!("./migrations"))
            .await
            .expect("migrated");
        let provider = Arc::new(Provider::new(provider, pool.clone()));
        Self {
            handler: OrderEvents {
                payments_topic: PAYMENTS.into(),
            },
            calls: ProviderCalls {
                pool: pool.clone(),
                waker: OutboxWaker::default(),
                provider: provider.clone(),
                payments_topic: PAYMENTS.into(),
                // Unless a test says otherwise the events carry their token
                // and the order service (nobody at port 9) is never asked.
                orders,
            },
            pool,
            provider,
            order_id: Uuid::new_v4().to_string(),
        }
    }

    /// The consumer handles `payload` of this order and commits.
    async fn consume(&self, producer: &str, payload: Payload) {
        let meta = EventMeta {
            correlation_id: "req-1".into(),
            causation_id: String::new(),
            trace: TraceContext::default(),
        };
        let incoming = Incoming {
            envelope: event::envelope(producer, &self.order_id, payload, &meta, Utc::now()),
            topic: "omnisaga.orders.v1".into(),
            partition: 0,
            offset: 0,
            trace: TraceContext::default(),
        };
        let mut tx = self.pool.begin().await.unwrap();
        self.handler.handle(&mut tx, &incoming).await.expect("handled");
        tx.commit().await.unwrap();
    }

    fn placed(&self) -> Payload {
        Payload::OrderPlaced(OrderPlaced {
            order_id: self.order_id.clone(),
            total: Some(Money {
                minor_units: 1999,
                currency: "EUR".into(),
            }),
            payment_method_token: "tok_visa".into(),
            ..Default::default()
        })
    }

    fn payment_id(&self) -> String {
        format!("pay-{}-1", self.order_id)
    }

    /// Makes the next queued call and commits it.
    async fn call_next(&self) {
        match self.calls.claim().await.expect("claimed") {
            Claimed::Work { work, .. } => self.calls.work(work).await.expect("call made"),
            Claimed::Wait(_) => panic!("no call was queued"),
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
    }

    async fn recorded(&self, event_type: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
            .bind(event_type)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn the_consumer_queues_the_call_and_a_caller_makes_it_and_records_the_answer() {
    let p = Payment::new("provider_calls_authorize").await;
    p.consume("order", p.placed()).await;
    assert!(
        !p.provider.holds(&p.payment_id()).await.unwrap(),
        "the consumer asked nobody"
    );
    assert_eq!(p.count("SELECT count(*) FROM provider_calls").await, 1);

    // A redelivered placement queues nothing more.
    p.consume("order", p.placed()).await;
    assert_eq!(p.count("SELECT count(*) FROM provider_calls").await, 1);

    p.call_next().await;
    assert!(p.provider.holds(&p.payment_id()).await.unwrap());
    assert_eq!(p.recorded("PaymentAuthorized").await, 1);
    assert_eq!(
        p.count("SELECT count(*) FROM provider_calls").await,
        0,
        "the call is off the queue"
    );
    assert_eq!(
        p.count("SELECT count(*) FROM outbox WHERE headers->>'event_type' = 'PaymentAuthorized'")
            .await,
        1,
        "the answer is published"
    );
    let status: String = sqlx::query_scalar("SELECT status FROM payment_view")
        .fetch_one(&p.pool)
        .await
        .unwrap();
    assert_eq!(status, "AUTHORIZED");
    assert!(
        matches!(p.calls.claim().await.unwrap(), Claimed::Wait(_)),
        "nothing left to call"
    );
}

#[tokio::test]
async fn an_approval_rolled_back_and_then_cancelled_is_voided_at_the_provider() {
    let p = Payment::new("provider_calls_lost_approval").await;
    p.consume("order", p.placed()).await;

    // The provider approves, then the caller dies before it records the
    // answer, and its lease runs out.
    let Claimed::Work { work: call, .. } = p.calls.claim().await.unwrap() else {
        panic!("the placement queued a call");
    };
    p.provider
        .authorize(&call.payment_id, "tok_visa")
        .await
        .expect("authorised");
    sqlx::query("UPDATE provider_calls SET leased_until = now()")
        .execute(&p.pool)
        .await
        .unwrap();
    assert!(
        p.provider.holds(&p.payment_id()).await.unwrap(),
        "the provider holds the money"
    );

    // The customer cancels before the call is made again.
    p.consume(
        "order",
        Payload::OrderCancelled(OrderCancelled {
            order_id: p.order_id.clone(),
            reason: "customer_request".into(),
        }),
    )
    .await;

    // The call made again is refused, and the stray approval released.
    p.call_next().await;
    assert!(
        !p.provider.holds(&p.payment_id()).await.unwrap(),
        "the approval nobody recorded was voided"
    );
    assert_eq!(
        p.recorded("PaymentAuthorized").await,
        0,
        "the refused attempt recorded nothing"
    );
    assert_eq!(p.count("SELECT count(*) FROM provider_calls").await, 0);
}

#[tokio::test]
async fn an_authorisation_is_released_at_the_provider_once_its_void_is_recorded() {
    let p = Payment::new("provider_calls_void").await;
    p.consume("order", p.placed()).await;
    p.call_next().await;
    assert!(p.provider.holds(&p.payment_id()).await.unwrap());

    p.consume(
        "warehouse",
        Payload::StockReleased(StockReleased {
            order_id: p.order_id.clone(),
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(p.recorded("PaymentVoided").await, 1);
    assert!(
        p.provider.holds(&p.payment_id()).await.unwrap(),
        "released by a caller, not the consumer"
    );

    p.call_next().await;
    assert!(
        !p.provider.holds(&p.payment_id()).await.unwrap(),
        "voided at the provider"
    );
    assert_eq!(p.count("SELECT count(*) FROM provider_calls").await, 0);
}

/// An order service that answers every request with `status` and a JSON
/// error body; returns its URL. It counts the requests it answered.
async fn order_service(status: u16) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = asked.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = r#"{"code":"not_found","message":"no such order"}"#;
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    (url, asked)
}

#[tokio::test]
async fn a_payment_method_the_order_service_does_not_know_fails_the_payment_and_frees_the_queue() {
    let (url, asked) = order_service(404).await;
    let p = Payment::asking(
        "provider_calls_unknown_method",
        OrderService::new(url, None, &Trust::system()).unwrap(),
    )
    .await;
    // As on the topics: no token in the event.
    let mut placed = p.placed();
    if let Payload::OrderPlaced(o) = &mut placed {
        o.payment_method_token.clear();
    }
    p.consume("order", placed).await;
    p.call_next().await;
    assert_eq!(
        asked.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the order service was asked"
    );
    assert!(
        !p.provider.holds(&p.payment_id()).await.unwrap(),
        "nothing was charged"
    );
    assert_eq!(p.recorded("PaymentFailed").await, 1);
    // The stored protobuf envelope carries the reason as its bytes.
    let with_reason: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'PaymentFailed'
           AND position(convert_to($1, 'UTF8') in envelope) > 0",
    )
    .bind(omnisaga_payment::workers::UNKNOWN_PAYMENT_METHOD)
    .fetch_one(&p.pool)
    .await
    .unwrap();
    assert_eq!(with_reason, 1, "the failure says why");
    assert_eq!(
        p.count("SELECT count(*) FROM provider_calls").await,
        0,
        "the queue goes on"
    );
}

#[tokio::test]
async fn an_order_service_that_fails_leaves_the_call_queued_for_later() {
    let (url, asked) = order_service(503).await;
    let p = Payment::asking(
        "provider_calls_order_service_down",
        OrderService::new(url, None, &Trust::system()).unwrap(),
    )
    .await;
    let mut placed = p.placed();
    if let Payload::OrderPlaced(o) = &mut placed {
        o.payment_method_token.clear();
    }
    p.consume("order", placed).await;
    let Claimed::Work { work, .. } = p.calls.claim().await.unwrap() else {
        panic!("no call was queued");
    };
    assert!(p.calls.work(work).await.is_err(), "a 503 is no answer");
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(
        p.count("SELECT count(*) FROM provider_calls").await,
        1,
        "the call waits to be made again"
    );
    assert_eq!(p.recorded("PaymentFailed").await, 0);
}

#[tokio::test]
async fn a_provider_slower_than_the_idle_transaction_timeout_still_gets_its_answer_recorded() {
    // The server ends a transaction idle for 300 ms; the provider takes 1.5 s.
    let p = Payment::with(
        "provider_calls_slow",
        OrderService::new("http://127.0.0.1:9".into(), None, &Trust::system()).unwrap(),
        ProviderConfig {
            latency: std::time::Duration::from_millis(1500),
            ..Default::default()
        },
        db::Timeouts {
            idle_in_transaction: std::time::Duration::from_millis(300),
            ..Default::default()
        },
    )
    .await;
    p.consume("order", p.placed()).await;
    p.call_next().await;
    assert_eq!(p.recorded("PaymentAuthorized").await, 1);
    assert_eq!(p.count("SELECT count(*) FROM provider_calls").await, 0);
}

#[tokio::test]
async fn a_caller_that_failed_gives_its_lease_up_and_a_leased_call_is_not_claimed_twice() {
    let p = Payment::with(
        "provider_calls_lease",
        OrderService::new("http://127.0.0.1:9".into(), None, &Trust::system()).unwrap(),
        ProviderConfig {
            timeout: std::time::Duration::from_millis(200),
            latency: std::time::Duration::from_secs(1),
            ..Default::default()
        },
        db::Timeouts::default(),
    )
    .await;
    p.consume("order", p.placed()).await;
    let Claimed::Work { work: call, .. } = p.calls.claim().await.unwrap() else {
        panic!("the placement queued a call");
    };
    assert!(
        matches!(p.calls.claim().await.unwrap(), Claimed::Wait(_)),
        "the leased call is nobody else's"
    );
    // The provider does not answer within its timeout: the call fails and
    // is free again at once.
    let err = p.calls.work(call).await.expect_err("no answer in time");
    assert!(format!("{err:#}").contains("did not answer"), "{err:#}");
    assert!(matches!(p.calls.claim().await.unwrap(), Claimed::Work { .. }));
}

#[tokio::test]
async fn a_call_is_claimed_in_one_statement_with_its_stream_and_no_look_follows_it() {
    use omnisaga_payment::store::{self, Action};
    use omnisaga_runtime::{testing::Statements, work::Then};

    let p = Payment::new("provider_calls_statements").await;
    p.consume("order", p.placed()).await;
    let before = Statements::now(&p.pool).await.unwrap();
    let Claimed::Work { work: call, then } = p.calls.claim().await.unwrap() else {
        panic!("the placement queued a call");
    };
    let claim = Statements::now(&p.pool).await.unwrap().since(&before);
    assert_eq!(
        claim.total(),
        1,
        "one statement leases the call and reads its stream:\n{claim}"
    );
    assert!(
        matches!(then, Then::Wait(_)),
        "nothing else queued: the caller waits for a commit, it does not look again ({then:?})"
    );
    p.calls.work(call).await.expect("call made");
    let made = Statements::now(&p.pool).await.unwrap().since(&before);
    // The claim; the provider's ledger (the simulator's, which also prunes
    // it at its first answer); the answer's transaction: BEGIN, the call
    // off the queue, the stream, the events with their outbox rows, the
    // view, COMMIT.
    assert_eq!(
        (made.total(), made.starting("BEGIN")),
        (1 + 2 + 6, 1),
        "the claim, the provider's ledger and the answer's one transaction:\n{made}"
    );
    assert_eq!(p.recorded("PaymentAuthorized").await, 1);

    // With another call waiting, the claim wakes an idle caller and looks again.
    let other = Uuid::new_v4();
    for order in [other, Uuid::new_v4()] {
        let mut conn = p.pool.acquire().await.unwrap();
        let (payment_id, trace) = (format!("pay-{order}-1"), TraceContext::default());
        store::queue_call(&mut conn, order, &payment_id, &Action::Void, "req-2", "", &trace)
            .await
            .unwrap();
    }
    let Claimed::Work { work: call, then } = p.calls.claim().await.unwrap() else {
        panic!("two calls are queued");
    };
    assert_eq!(call.order_id, other, "the oldest first");
    assert!(call.stream.is_empty(), "a void is made without its stream");
    assert_eq!(then, Then::WakeAnother);
}
