//! The outbox relay against the real broker: rows whose sends fail do not
//! starve the others, and a pass is one statement.

use std::{collections::BTreeMap, time::Duration};

use anyhow::Result;
use omnisaga_runtime::{db, kafka, outbox, relay::Relay, testing, work::OutboxWaker};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn rows_of_a_key_that_cannot_be_published_do_not_hold_up_the_others() -> Result<()> {
    let pool = db::connect(&testing::fresh_database("relay").await?, 4).await?;
    db::migrate(&pool, sqlx::migrate!("./tests/migrations")).await?;
    let kafka = testing::fresh_kafka()?;
    kafka::ensure_topics(&kafka).await?;
    // More rows of one key than a pass reads, for a topic the broker
    // refuses (as a partition that is down refuses them), then one that
    // can go.
    let mut tx = pool.begin().await?;
    for i in 0..25 {
        let payload = format!("stuck-{i}");
        outbox::enqueue_raw(
            &mut tx,
            "no topic here!",
            "stuck",
            payload.as_bytes(),
            &BTreeMap::new(),
        )
        .await?;
    }
    outbox::enqueue_raw(&mut tx, &kafka.topics().orders, "fine", b"fine", &BTreeMap::new()).await?;
    tx.commit().await?;

    let (waker, token) = (OutboxWaker::default(), CancellationToken::new());
    let relay = Relay {
        pool: pool.clone(),
        producer: kafka::producer(&kafka, "relay-test")?,
        waker: waker.clone(),
        poll: Duration::from_millis(100),
        batch: 10,
        lock_key: 13,
        inbox_retention: Duration::from_secs(3600),
    };
    let running = tokio::spawn(relay.run(token.clone()));
    testing::wait_for(
        "the row behind the stuck ones",
        Duration::from_secs(90),
        || async {
            let published: bool =
                sqlx::query_scalar("SELECT published_at IS NOT NULL FROM outbox WHERE message_key = 'fine'")
                    .fetch_one(&pool)
                    .await
                    .ok()?;
            published.then_some(())
        },
    )
    .await?;
    assert_eq!(outbox::backlog(&pool).await?, 25, "the stuck rows wait, in order");
    token.cancel();
    running.abort();
    Ok(())
}

#[tokio::test]
async fn a_pass_marks_what_the_last_one_delivered_and_reads_the_next_rows_in_one_statement() -> Result<()> {
    let pool = db::connect(&testing::fresh_database("relay").await?, 4).await?;
    db::migrate(&pool, sqlx::migrate!("./tests/migrations")).await?;
    let kafka = testing::fresh_kafka()?;
    kafka::ensure_topics(&kafka).await?;
    let (waker, token) = (OutboxWaker::default(), CancellationToken::new());
    let relay = Relay {
        pool: pool.clone(),
        producer: kafka::producer(&kafka, "relay-test")?,
        waker: waker.clone(),
        poll: Duration::from_millis(100),
        batch: 10,
        lock_key: 14,
        inbox_retention: Duration::from_secs(3600),
    };
    let before = testing::Statements::now(&pool).await?;
    let running = tokio::spawn(relay.run(token.clone()));
    // Rows committed one after another, each waking the relay.
    for i in 0..5 {
        let mut tx = pool.begin().await?;
        let key = format!("order-{i}");
        outbox::enqueue_raw(&mut tx, &kafka.topics().orders, &key, b"x", &BTreeMap::new()).await?;
        tx.commit().await?;
        waker.wake_relay();
    }
    testing::wait_for("every row marked published", Duration::from_secs(30), || async {
        (outbox::backlog(&pool).await.ok()? == 0).then_some(())
    })
    .await?;
    let ran = testing::Statements::now(&pool).await?.since(&before);
    let alone = ran
        .0
        .iter()
        .filter(|(q, _)| q.starts_with("UPDATE outbox"))
        .count();
    assert_eq!(alone, 0, "a mark ran as a statement of its own: {:#?}", ran.0);
    assert!(ran.starting("WITH marked") >= 2, "{:#?}", ran.0);

    // The lead's session commits without waiting for the disk; once the
    // relay stopped, no connection of the pool, which business
    // transactions use, does.
    token.cancel();
    tokio::time::timeout(Duration::from_secs(10), running).await???;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = pool.acquire().await?;
        let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&mut *conn)
            .await?;
        assert_eq!(setting, "on");
        held.push(conn);
    }
    Ok(())
}
