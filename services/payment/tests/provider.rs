//! The payment-provider simulator against its ledger in PostgreSQL: test
//! tokens, the first answer standing per payment id, voids, the outage
//! switch, a ledger that outlives the service, and its retention.

use std::{sync::atomic::Ordering, time::Duration};

use omnisaga_payment::provider::{Outcome, Provider, ProviderConfig};
use omnisaga_runtime::testing;
use sqlx::PgPool;

async fn ledger(name: &str) -> PgPool {
    testing::migrated_database(name, sqlx::migrate!("./migrations"))
        .await
        .expect("test database")
}

#[tokio::test]
async fn test_tokens_answer_deterministically() {
    let p = Provider::new(ProviderConfig::default(), ledger("provider_tokens").await);
    assert_eq!(p.authorize("p1", "tok_visa").await.unwrap(), Outcome::Approved);
    assert_eq!(
        p.authorize("p2", "tok_decline").await.unwrap(),
        Outcome::Declined("card_declined".into())
    );
    assert_eq!(
        p.authorize("p3", "tok_insufficient_funds").await.unwrap(),
        Outcome::Declined("insufficient_funds".into())
    );
    assert_eq!(
        p.authorize("p4", "tok_unavailable").await.unwrap(),
        Outcome::Unavailable
    );
}

#[tokio::test]
async fn a_repeated_payment_id_gets_the_first_answer_even_after_a_restart() {
    let pool = ledger("provider_first_answer").await;
    let config = ProviderConfig {
        decline_rate: 0.5,
        ..Default::default()
    };
    let p = Provider::new(config.clone(), pool.clone());
    let first = p.authorize("same", "tok_visa").await.unwrap();
    for _ in 0..20 {
        assert_eq!(p.authorize("same", "tok_visa").await.unwrap(), first);
    }
    // A new simulator on the same ledger: the payment service restarted.
    let restarted = Provider::new(config, pool);
    for _ in 0..20 {
        assert_eq!(restarted.authorize("same", "tok_visa").await.unwrap(), first);
    }
    // Even when asked with a token that would now be declined.
    assert_eq!(restarted.authorize("same", "tok_decline").await.unwrap(), first);
}

#[tokio::test]
async fn callers_asking_at_once_all_get_the_one_answer_recorded() {
    let pool = ledger("provider_at_once").await;
    let p = std::sync::Arc::new(Provider::new(
        ProviderConfig {
            decline_rate: 0.5,
            ..Default::default()
        },
        pool.clone(),
    ));
    let mut asking = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let p = p.clone();
        asking.spawn(async move { p.authorize("contended", "tok_visa").await.unwrap() });
    }
    let answers = asking.join_all().await;
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM provider_ledger")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn an_approval_is_held_until_voided() {
    let p = Provider::new(ProviderConfig::default(), ledger("provider_holds").await);
    assert!(!p.holds("p1").await.unwrap(), "nothing asked, nothing held");
    p.authorize("p1", "tok_visa").await.unwrap();
    p.authorize("p2", "tok_decline").await.unwrap();
    assert!(p.holds("p1").await.unwrap());
    assert!(!p.holds("p2").await.unwrap(), "a decline holds nothing");
    p.void("p1").await.unwrap();
    p.void("p1").await.unwrap();
    p.void("never-asked").await.unwrap();
    assert!(!p.holds("p1").await.unwrap());
    assert_eq!(
        p.authorize("p1", "tok_visa").await.unwrap(),
        Outcome::Approved,
        "asking again gives the first answer"
    );
    assert!(!p.holds("p1").await.unwrap(), "and does not authorise again");
}

#[tokio::test]
async fn the_outage_switch_makes_every_call_unavailable_and_records_nothing() {
    let pool = ledger("provider_outage").await;
    let p = Provider::new(ProviderConfig::default(), pool.clone());
    p.outage.store(true, Ordering::Relaxed);
    assert_eq!(p.authorize("p1", "tok_visa").await.unwrap(), Outcome::Unavailable);
    p.outage.store(false, Ordering::Relaxed);
    assert_eq!(
        p.authorize("p1", "tok_decline").await.unwrap(),
        Outcome::Declined("card_declined".into()),
        "an outage is no answer: the payment id is answered anew"
    );
}

#[tokio::test]
async fn a_ledger_out_of_reach_is_no_answer() {
    let pool = ledger("provider_unreachable").await;
    let p = Provider::new(ProviderConfig::default(), pool.clone());
    pool.close().await;
    assert!(p.authorize("p1", "tok_visa").await.is_err());
    assert!(p.holds("p1").await.is_err());
    assert!(p.void("p1").await.is_err());
}

#[tokio::test]
async fn answers_older_than_the_retention_are_pruned() {
    let pool = ledger("provider_prune").await;
    sqlx::query(
        "INSERT INTO provider_ledger (payment_id, outcome, answered_at)
         VALUES ('old', 'APPROVED', now() - interval '31 days'), ('recent', 'APPROVED', now() - interval '29 days')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let p = Provider::new(
        ProviderConfig {
            ledger_retention: Duration::from_secs(30 * 24 * 3600),
            ..Default::default()
        },
        pool.clone(),
    );
    // The first answer after a start prunes.
    p.authorize("new", "tok_visa").await.unwrap();
    let mut left: Vec<String> = sqlx::query_scalar("SELECT payment_id FROM provider_ledger")
        .fetch_all(&pool)
        .await
        .unwrap();
    left.sort();
    assert_eq!(left, ["new", "recent"]);
}
