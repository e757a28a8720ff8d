//! The per-client rate limit against the real PostgreSQL: one bucket per
//! client in the service's database, drawn on by every instance.

use std::time::Duration;

use anyhow::Result;
use omnisaga_runtime::{
    db,
    limits::{Guard, Limits},
    testing,
};

async fn guards(n: usize, rate: f64, burst: f64) -> Result<Vec<std::sync::Arc<Guard>>> {
    let pool = db::connect(&testing::fresh_database("limits").await?, 4).await?;
    db::migrate(&pool, sqlx::migrate!("./tests/migrations")).await?;
    let limits = Limits {
        rate_per_second: rate,
        burst,
        ..Limits::default()
    };
    // Each guard is an instance of the service: its own pool, one database.
    Ok((0..n).map(|_| Guard::new(limits, pool.clone())).collect())
}

#[tokio::test]
async fn a_client_gets_its_burst_then_waits_one_interval() -> Result<()> {
    let g = guards(1, 0.5, 3.0).await?.remove(0);
    for i in 0..3 {
        assert_eq!(g.take("a").await, Ok(()), "request {i} is within the burst");
    }
    let wait = g.take("a").await.expect_err("the fourth is over the burst");
    // One interval of 2 s, less the moments the requests took.
    assert!(
        wait > Duration::from_millis(1500) && wait <= Duration::from_secs(2),
        "{wait:?}"
    );
    assert!(g.take("a").await.is_err(), "still waiting");
    assert_eq!(g.take("b").await, Ok(()), "b has a bucket of its own");
    Ok(())
}

#[tokio::test]
async fn instances_share_one_bucket_per_client() -> Result<()> {
    let instances = guards(3, 0.5, 4.0).await?;
    // Round robin over three instances, as a load balancer would.
    for i in 0..4 {
        assert_eq!(instances[i % 3].take("a").await, Ok(()), "request {i}");
    }
    for (i, g) in instances.iter().enumerate() {
        assert!(g.take("a").await.is_err(), "instance {i} sees the burst spent");
    }
    Ok(())
}

#[tokio::test]
async fn concurrent_requests_take_no_more_than_the_burst() -> Result<()> {
    let instances = guards(2, 0.1, 5.0).await?;
    let takes = (0..40).map(|i| {
        let g = instances[i % 2].clone();
        async move { g.take("a").await.is_ok() }
    });
    let allowed = futures::future::join_all(takes)
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count();
    assert_eq!(allowed, 5);
    Ok(())
}

#[tokio::test]
async fn the_bucket_refills_at_the_rate_and_only_to_the_burst() -> Result<()> {
    let g = guards(1, 2.0, 2.0).await?.remove(0);
    assert!(g.take("a").await.is_ok() && g.take("a").await.is_ok());
    assert!(g.take("a").await.is_err());
    // Two per second: half a second is one token; the time passing is what
    // is tested. Three intervals idle still give only the burst of two.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(g.take("a").await.is_ok() && g.take("a").await.is_ok());
    assert!(g.take("a").await.is_err(), "idle time gives only the burst");
    Ok(())
}
