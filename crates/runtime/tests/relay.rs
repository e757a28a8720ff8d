//! The outbox relay against the real broker: rows whose sends fail do not
//! starve the others.

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
