//! Several instances of a service on one database: one outbox relay
//! publishes at a time, rows another instance commits reach it at once,
//! and when its instance dies another takes over within a poll, against
//! the real broker and PostgreSQL.

use std::{collections::BTreeMap, str::FromStr, time::Duration};

use anyhow::{Context, Result};
use omnisaga_runtime::{config::KafkaConfig, db, kafka, outbox, relay::Relay, testing, work::OutboxWaker};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};
use tokio::{task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

/// The relay's poll: the service's default.
const POLL: Duration = Duration::from_secs(1);

/// An instance's pool, its connections named `name` in `pg_stat_activity`.
async fn instance_pool(url: &str, name: &str) -> Result<PgPool> {
    let options = PgConnectOptions::from_str(url)?.application_name(name);
    Ok(PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?)
}

/// The instance whose connection holds the relay's advisory lock.
async fn leader(pool: &PgPool) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)
         WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_optional(pool)
    .await?)
}

async fn write_row(pool: &PgPool, topic: &str, key: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    outbox::enqueue_raw(&mut tx, topic, key, key.as_bytes(), &BTreeMap::new()).await?;
    tx.commit().await?;
    Ok(())
}

async fn wait_published(pool: &PgPool, what: &str) -> Result<()> {
    testing::wait_for(what, Duration::from_secs(30), || async {
        (outbox::backlog(pool).await.ok()? == 0).then_some(())
    })
    .await
}

/// A fresh database (its URL and an operator's pool on it) and topics.
async fn setup() -> Result<(String, PgPool, KafkaConfig)> {
    let url = testing::fresh_database("instances").await?;
    let admin = db::connect(&url, 2).await?;
    db::migrate(&admin, sqlx::migrate!("./tests/migrations")).await?;
    let kafka = testing::fresh_kafka()?;
    kafka::ensure_topics(&kafka).await?;
    Ok((url, admin, kafka))
}

/// `n` instances' relays on `url`, each with its pool (named `instance-<i>`)
/// and waker, polling every `poll`.
async fn start_relays(
    url: &str,
    kafka: &KafkaConfig,
    n: usize,
    poll: Duration,
) -> Result<BTreeMap<String, (PgPool, OutboxWaker, JoinHandle<Result<()>>, CancellationToken)>> {
    let mut relays = BTreeMap::new();
    for i in 0..n {
        let name = format!("instance-{i}");
        let pool = instance_pool(url, &name).await?;
        let (waker, token) = (OutboxWaker::default(), CancellationToken::new());
        let relay = Relay {
            pool: pool.clone(),
            producer: kafka::producer(kafka, &name)?,
            waker: waker.clone(),
            poll,
            batch: 100,
            lock_key: 7,
            inbox_retention: Duration::from_secs(3600),
        };
        let task = tokio::spawn(relay.run(token.clone()));
        relays.insert(name, (pool, waker, task, token));
    }
    Ok(relays)
}

#[tokio::test]
async fn rows_another_instance_commits_reach_the_leader_without_waiting_for_its_poll() -> Result<()> {
    let (url, admin, kafka) = setup().await?;
    let topic = kafka.topics().orders;
    // A poll far longer than the wait below: only a wake can publish in time.
    let relays = start_relays(&url, &kafka, 2, Duration::from_secs(600)).await?;
    let leading = testing::wait_for("a relay to lead", Duration::from_secs(20), || async {
        leader(&admin).await.ok().flatten()
    })
    .await?;
    for (name, (pool, waker, _, _)) in &relays {
        if *name == leading {
            continue;
        }
        // A commit in the instance that does not lead, and its own wake.
        write_row(pool, &topic, name).await?;
        waker.wake();
        wait_published(&admin, "the row the other instance committed").await?;
    }
    assert_eq!(leader(&admin).await?, Some(leading), "the lead stayed");
    for (_, (_, _, _, token)) in relays {
        token.cancel();
    }
    Ok(())
}

#[tokio::test]
async fn one_relay_publishes_and_another_takes_over_when_its_instance_dies() -> Result<()> {
    let (url, admin, kafka) = setup().await?;
    let topic = kafka.topics().orders;

    let mut relays = start_relays(&url, &kafka, 3, POLL).await?;
    write_row(&admin, &topic, "before").await?;
    wait_published(&admin, "the first row to be published").await?;
    let first = leader(&admin).await?.context("nobody holds the relay's lock")?;
    assert!(relays.contains_key(&first), "{first} leads");

    // The leader's process dies: its task stops where it is, and the server
    // sees its connections go.
    let (pool, _, task, _) = relays.remove(&first).context("the leader")?;
    task.abort();
    // Only this test's database: the other tests' instances have the same names.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = $1 AND datname = current_database()",
    )
    .bind(&first)
    .execute(&admin)
    .await?;
    pool.close().await;
    let died = Instant::now();
    write_row(&admin, &topic, "after").await?;
    wait_published(&admin, "the row written after the leader died").await?;
    let takeover = died.elapsed();
    let second = leader(&admin).await?.context("nobody leads after the takeover")?;
    assert_ne!(second, first);
    assert!(relays.contains_key(&second), "{second} leads");
    eprintln!(
        "takeover: {} ms (relay poll {} ms)",
        takeover.as_millis(),
        POLL.as_millis()
    );
    for (_, (_, _, _, token)) in relays {
        token.cancel();
    }
    Ok(())
}

#[tokio::test]
async fn a_leader_whose_lock_connection_is_cut_resigns_while_it_keeps_running() -> Result<()> {
    let (url, admin, kafka) = setup().await?;
    let topic = kafka.topics().orders;
    let relays = start_relays(&url, &kafka, 1, POLL).await?;
    let (_, (_, waker, _, token)) = relays.first_key_value().context("the relay")?;
    write_row(&admin, &topic, "before").await?;
    wait_published(&admin, "the first row to be published").await?;

    // Only the lock connection is cut: the instance and its pool live on.
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_locks
         WHERE locktype = 'advisory' AND granted
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(&admin)
    .await?;
    assert_eq!(cut, [true], "one lock connection cut");
    // Another instance takes the lead the cut freed: here the test's own
    // connection (a pool of one), which hears the wakes a relay that does
    // not lead sends the leader.
    let rival = PgPoolOptions::new().max_connections(1).connect(&url).await?;
    testing::wait_for("the rival to take the lock", Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock(7)")
            .fetch_one(&rival)
            .await
            .ok()?
            .then_some(())
    })
    .await?;
    let mut wakes = sqlx::postgres::PgListener::connect(&url).await?;
    wakes.listen("omnisaga_outbox_wake").await?;

    write_row(&admin, &topic, "during").await?;
    waker.wake();
    tokio::time::timeout(Duration::from_secs(15), wakes.recv())
        .await
        .context("the cut leader went on as if it led: it never told the new leader of its commit")??;
    assert_eq!(
        outbox::backlog(&admin).await?,
        1,
        "the cut leader published beside the new one"
    );

    // The rival goes; the relay takes the lead again and publishes.
    rival.close().await;
    wait_published(&admin, "the row written while the rival led").await?;
    assert_eq!(leader(&admin).await?.as_deref(), Some("instance-0"));
    token.cancel();
    Ok(())
}
