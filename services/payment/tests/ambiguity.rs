//! Ambiguous provider answers against the real PostgreSQL and the
//! simulator's ledger: a provider that charged and then answered
//! "unavailable", or nothing at all, is asked again with the same payment id
//! (the idempotency key) and then for the outcome by that key, before any
//! new attempt: the order is authorised once, and no approval is left that
//! nobody recorded.

use std::sync::Arc;

use chrono::Utc;
use omnisaga_payment::{
    domain::PaymentAggregate,
    handlers::OrderEvents,
    orders::OrderService,
    provider::{Provider, ProviderConfig},
    workers::ProviderCalls,
};
use omnisaga_proto::v1::{envelope::Payload, Money, OrderPlaced, PaymentRetryRequested};
use omnisaga_runtime::{
    aggregate::Executor,
    consumer::{Handler, Incoming},
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
    handler: OrderEvents,
    calls: ProviderCalls,
    order_id: String,
}

impl Payment {
    async fn new(name: &str, config: ProviderConfig) -> Self {
        let pool = testing::migrated_database(name, sqlx::migrate!("./migrations"))
            .await
            .expect("test database");
        Self {
            handler: OrderEvents {
                payments_topic: PAYMENTS.into(),
            },
            calls: ProviderCalls {
                pool: pool.clone(),
                waker: OutboxWaker::default(),
                provider: Arc::new(Provider::new(config, pool.clone())),
                payments_topic: PAYMENTS.into(),
                // The events carry their tokens: nobody at port 9 is asked.
                orders: OrderService::new("http://127.0.0.1:9".into(), None, &Trust::system()).unwrap(),
            },
            pool,
            order_id: Uuid::new_v4().to_string(),
        }
    }

    /// The consumer handles `payload` of this order and commits.
    async fn consume(&self, payload: Payload) {
        let meta = EventMeta {
            correlation_id: "req-1".into(),
            causation_id: String::new(),
            trace: TraceContext::default(),
        };
        let incoming = Incoming {
            envelope: event::envelope("order", &self.order_id, payload, &meta, Utc::now()),
            topic: "omnisaga.orders.v1".into(),
            partition: 0,
            offset: 0,
            trace: TraceContext::default(),
        };
        let mut tx = self.pool.begin().await.unwrap();
        self.handler.handle(&mut tx, &incoming).await.expect("handled");
        tx.commit().await.unwrap();
    }

    fn placed(&self, token: &str) -> Payload {
        Payload::OrderPlaced(OrderPlaced {
            order_id: self.order_id.clone(),
            total: Some(Money {
                minor_units: 1999,
                currency: "EUR".into(),
            }),
            payment_method_token: token.into(),
            ..Default::default()
        })
    }

    fn retry(&self, attempt: u32, token: &str) -> Payload {
        Payload::PaymentRetryRequested(PaymentRetryRequested {
            order_id: self.order_id.clone(),
            attempt,
            payment_method_token: token.into(),
        })
    }

    /// Makes every queued call, as the callers would: a call that fails is
    /// made again, up to `tries` times in all.
    async fn call_all(&self, tries: usize) {
        for _ in 0..tries {
            match self.calls.claim().await.expect("claimed") {
                Claimed::Work { work, .. } => {
                    let _ = self.calls.work(work).await;
                }
                Claimed::Wait(_) => return,
            }
        }
    }

    /// The order's approvals the provider holds (approved, not voided).
    async fn held(&self) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT payment_id FROM provider_ledger
             WHERE payment_id LIKE $1 AND outcome = 'APPROVED' AND voided_at IS NULL ORDER BY payment_id",
        )
        .bind(format!("pay-{}-%", self.order_id))
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    /// The payment ids of the order's recorded authorisations.
    async fn authorised(&self) -> Vec<String> {
        let recorded: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'PaymentAuthorized'")
                .fetch_one(&self.pool)
                .await
                .unwrap();
        let mut conn = self.pool.acquire().await.unwrap();
        let loaded = Executor::<PaymentAggregate>::new(PAYMENTS)
            .load(&mut conn, &self.order_id)
            .await
            .unwrap();
        assert_eq!(recorded, loaded.state.authorized.iter().count() as i64);
        loaded.state.authorized.into_iter().collect()
    }

    /// Exactly one authorisation: the one the provider holds is the one
    /// the stream recorded, and no other approval is left standing.
    async fn authorised_once(&self) {
        let held = self.held().await;
        assert_eq!(held.len(), 1, "approvals the provider holds: {held:?}");
        assert_eq!(
            self.authorised().await,
            held,
            "the stream records the approval held"
        );
    }
}

#[tokio::test]
async fn a_charge_answered_unavailable_is_found_by_its_key_and_no_second_attempt_charges() {
    let p = Payment::new("ambiguity_unavailable", ProviderConfig::default()).await;
    p.consume(p.placed("tok_charged_unavailable")).await;
    p.call_all(3).await;
    // The order service asks for another attempt, with a card that works.
    p.consume(p.retry(2, "tok_visa")).await;
    p.call_all(3).await;
    p.authorised_once().await;
}

#[tokio::test]
async fn a_first_approval_answered_unavailable_is_asked_again_with_the_same_key() {
    let config = ProviderConfig {
        ambiguous_rate: 1.0,
        ..Default::default()
    };
    let p = Payment::new("ambiguity_first_answer_lost", config).await;
    p.consume(p.placed("tok_visa")).await;
    p.call_all(3).await;
    p.consume(p.retry(2, "tok_visa")).await;
    p.call_all(3).await;
    p.authorised_once().await;
    assert_eq!(p.held().await, vec![format!("pay-{}-1", p.order_id)]);
}

#[tokio::test]
async fn a_charge_whose_answer_never_comes_is_found_by_its_key() {
    let p = Payment::new("ambiguity_timeout", ProviderConfig::default()).await;
    p.consume(p.placed("tok_charged_timeout")).await;
    p.call_all(3).await;
    p.authorised_once().await;
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM provider_calls")
        .fetch_one(&p.pool)
        .await
        .unwrap();
    assert_eq!(queued, 0, "the call is done");
}

#[tokio::test]
async fn an_outage_that_took_nothing_still_fails_the_attempt() {
    let p = Payment::new("ambiguity_outage", ProviderConfig::default()).await;
    p.consume(p.placed("tok_unavailable")).await;
    p.call_all(3).await;
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'PaymentFailed'")
        .fetch_one(&p.pool)
        .await
        .unwrap();
    assert_eq!(failed, 1, "the provider holds nothing: the order may try again");
    assert!(p.held().await.is_empty());
}

#[tokio::test]
async fn an_earlier_attempt_that_charged_after_it_was_failed_is_voided_before_a_new_one() {
    let p = Payment::new("ambiguity_late_charge", ProviderConfig::default()).await;
    p.consume(p.placed("tok_unavailable")).await;
    p.call_all(3).await;
    // The provider took the first attempt after all, after its outcome was
    // asked and the attempt failed: an answer that came late.
    sqlx::query("INSERT INTO provider_ledger (payment_id, outcome) VALUES ($1, 'APPROVED')")
        .bind(format!("pay-{}-1", p.order_id))
        .execute(&p.pool)
        .await
        .unwrap();
    p.consume(p.retry(2, "tok_visa")).await;
    p.call_all(3).await;
    p.authorised_once().await;
    assert_eq!(p.held().await, vec![format!("pay-{}-2", p.order_id)]);
}

#[tokio::test]
async fn a_caller_stopped_in_the_middle_of_a_call_hands_its_lease_back() {
    let config = ProviderConfig {
        latency: std::time::Duration::from_secs(60),
        timeout: std::time::Duration::from_secs(120),
        ..Default::default()
    };
    let p = Payment::new("ambiguity_hand_back", config).await;
    p.consume(p.placed("tok_visa")).await;
    let Claimed::Work { work, .. } = p.calls.claim().await.expect("claimed") else {
        panic!("the placement queued a call");
    };
    let calls = p.calls.clone();
    // The caller's task has begun the call before it is stopped: a task
    // aborted before its first poll never began it, and on a busy machine
    // this test's own look may end without ever yielding to it.
    let (began, beginning) = tokio::sync::oneshot::channel();
    let making = tokio::spawn(async move {
        let _ = began.send(());
        calls.work(work).await
    });
    // One thread: the task's first poll goes on into the call, which takes
    // the hand-back guard before its first wait, before this one resumes.
    beginning.await.expect("the call began");
    // In hand, waiting for the slow provider: no other caller may take it.
    assert!(matches!(p.calls.claim().await.expect("looked"), Claimed::Wait(_)));
    // A graceful stop's grace period ends: the caller is aborted.
    making.abort();
    let _ = making.await;
    let released = testing::wait_for(
        "the lease handed back",
        std::time::Duration::from_secs(10),
        || async {
            let leased: Option<bool> =
                sqlx::query_scalar("SELECT bool_or(leased_until IS NOT NULL) FROM provider_calls")
                    .fetch_one(&p.pool)
                    .await
                    .ok()?;
            (leased == Some(false)).then_some(())
        },
    )
    .await;
    assert!(
        released.is_ok(),
        "{released:?}: the call waits for its lease to run out"
    );
    assert!(
        matches!(p.calls.claim().await.expect("looked"), Claimed::Work { .. }),
        "another caller takes the call at once"
    );
}
