//! An approval whose recording rolled back is voided once the order no
//! longer needs paying, against the real PostgreSQL.

use std::sync::Arc;

use chrono::Utc;
use omnisaga_payment::{
    handlers::OrderEvents,
    provider::{Provider, ProviderConfig},
};
use omnisaga_proto::v1::{envelope::Payload, Money, OrderCancelled, OrderPlaced};
use omnisaga_runtime::{
    consumer::{Handler, Incoming},
    event::{self, EventMeta},
    testing, TraceContext,
};
use sqlx::PgPool;
use uuid::Uuid;

async fn database() -> PgPool {
    testing::migrated_database("lost_approval", sqlx::migrate!("./migrations"))
        .await
        .expect("test database")
}

fn incoming(order_id: &str, payload: Payload) -> Incoming {
    let meta = EventMeta {
        correlation_id: "req-1".into(),
        causation_id: String::new(),
        trace: TraceContext::default(),
    };
    Incoming {
        envelope: event::envelope("order", order_id, payload, &meta, Utc::now()),
        topic: "omnisaga.orders.v1".into(),
        partition: 0,
        offset: 0,
        trace: TraceContext::default(),
    }
}

#[tokio::test]
async fn an_approval_rolled_back_and_then_cancelled_is_voided_at_the_provider() {
    let pool = database().await;
    let provider = Arc::new(Provider::new(ProviderConfig::default()));
    let handler = OrderEvents {
        provider: provider.clone(),
        payments_topic: "omnisaga.payments.v1".into(),
    };
    let order_id = Uuid::new_v4().to_string();
    let placed = incoming(
        &order_id,
        Payload::OrderPlaced(OrderPlaced {
            order_id: order_id.clone(),
            total: Some(Money {
                minor_units: 1999,
                currency: "EUR".into(),
            }),
            payment_method_token: "tok_visa".into(),
            ..Default::default()
        }),
    );
    let payment_id = format!("pay-{order_id}-1");

    // The provider approves, then the transaction recording it is lost.
    let mut tx = pool.begin().await.unwrap();
    handler.handle(&mut tx, &placed).await.expect("authorised");
    tx.rollback().await.unwrap();
    assert!(provider.holds(&payment_id), "the provider holds the money");

    // The customer cancels before the placement is redelivered.
    let cancelled = incoming(
        &order_id,
        Payload::OrderCancelled(OrderCancelled {
            order_id: order_id.clone(),
            reason: "customer_request".into(),
        }),
    );
    let mut tx = pool.begin().await.unwrap();
    handler
        .handle(&mut tx, &cancelled)
        .await
        .expect("cancellation recorded");
    tx.commit().await.unwrap();

    // The redelivered placement is refused, and the stray approval released.
    let mut tx = pool.begin().await.unwrap();
    handler.handle(&mut tx, &placed).await.expect("refused quietly");
    tx.commit().await.unwrap();
    assert!(
        !provider.holds(&payment_id),
        "the approval nobody recorded was voided"
    );
    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'PaymentAuthorized'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(recorded, 0, "the refused attempt recorded nothing");
}
