//! Faults between the services and PostgreSQL, through the proxy in front
//! of each service instance's connections (`StackOptions::database_proxies`):
//! a silent partition of the outbox relay leader's instance alone (or of
//! its lock connection alone), past the keepalive that ends its lock, while
//! its process lives; and a slow
//! database (every byte late, with jitter) that stretches transactions until
//! the pools run out of connections.
//!
//! The partition is what TCP makes of one: nothing arrives and nothing is
//! answered while the sockets stay open, and what was sent is delivered on
//! heal to the connections that survived (TCP retransmits). The one
//! connection that does not survive is the relay's lock connection, whose
//! keepalive (idle 10 s, then 3 probes 5 s apart) tells the server its peer
//! is gone after 25 s: the proxy cannot stop the kernel answering the
//! server's probes, so it severs that connection on the server's side then
//! ([`omnisaga_stack::netfault::Proxy::sever`]), the server ends the session and the
//! lock goes with it, and the relay's process learns of it only when the
//! partition heals, as a real one would.

use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::Connection as _;
use tokio::time::Instant;

use omnisaga_bench::probe::metric_sum;
use omnisaga_stack::{instance_label, netfault::Mode, pg_server, Stack, SERVICES};

/// When the server gives up on the relay's lock connection behind a
/// partition: its keepalive, idle 10 s plus 3 probes 5 s apart
/// (`omnisaga_runtime::outbox`).
pub const LOCK_KEEPALIVE: Duration = Duration::from_secs(25);

/// How long after a heal the relays' publishing is watched: only one
/// instance may publish.
pub const WATCH_AFTER_HEAL: Duration = Duration::from_secs(10);

/// The metric each instance counts its published rows in.
const PUBLISHED: &str = "omnisaga_outbox_published_total";

/// What of the relay leader's database traffic a partition takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Every connection of its instance: the pool's stall too (a host or
    /// its network gone).
    Instance,
    /// Its lock connection alone, the pool's untouched: what a NAT or a
    /// firewall that drops one long idle connection does.
    LockConnection,
}

/// Partitions the relay leader of `service` from PostgreSQL (as `cut`
/// says) for `duration` (past [`LOCK_KEEPALIVE`]), then heals it; fails
/// unless another instance took the lead meanwhile, and unless from then
/// on (until [`WATCH_AFTER_HEAL`] after the heal) only one relay of
/// `service` published. Returns what it saw.
pub async fn partition_relay_leader(
    stack: &Stack,
    service: &str,
    duration: Duration,
    cut: Cut,
) -> Result<String> {
    anyhow::ensure!(
        duration >= LOCK_KEEPALIVE + Duration::from_secs(5),
        "a partition of {} s ends before the server gives the lock up ({} s): at least {} s",
        duration.as_secs(),
        LOCK_KEEPALIVE.as_secs(),
        (LOCK_KEEPALIVE + Duration::from_secs(5)).as_secs()
    );
    anyhow::ensure!(
        stack.instances(service) > 1,
        "{service} runs one instance: nobody could take its relay's lead"
    );
    let (leader, lock_port) = relay_leader(stack, service)
        .await?
        .with_context(|| format!("no relay of {service} leads"))?;
    let label = instance_label(service, leader);
    let proxy = stack
        .database_proxy(service, leader)
        .context("the stack has no database proxies (StackOptions::database_proxies)")?;
    let urls: Vec<(String, String)> = stack
        .services
        .iter()
        .filter(|s| s.name == service)
        .map(|s| (s.label(), s.url.clone()))
        .collect();
    let http = reqwest::Client::new();
    let started = Instant::now();
    match cut {
        Cut::Instance => proxy.set(Mode::Stall),
        Cut::LockConnection => anyhow::ensure!(
            proxy.isolate(lock_port, true),
            "{label}'s lock connection is gone"
        ),
    }
    tokio::time::sleep(LOCK_KEEPALIVE).await;
    let severed = proxy.sever(lock_port);
    let mut successor = None;
    // Each instance's count of published rows once another took the lead.
    let mut before = Vec::new();
    while started.elapsed() < duration {
        if successor.is_none() {
            if let Ok(Some((i, _))) = relay_leader(stack, service).await {
                if i != leader {
                    successor = Some((i, started.elapsed()));
                    before = published(&http, &urls).await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    match cut {
        Cut::Instance => proxy.set(Mode::Pass),
        Cut::LockConnection => {
            proxy.isolate(lock_port, false);
        }
    }
    anyhow::ensure!(
        severed,
        "{label}'s lock connection was gone before the keepalive ran out"
    );
    let (successor, after) = successor.with_context(|| {
        format!(
            "no other relay of {service} took the lead within {} s of partitioning {label}",
            duration.as_secs()
        )
    })?;
    // One relay publishes at a time: from the successor's lead on, only one
    // instance's count of published rows may grow.
    // A partitioned instance does not answer /metrics (it reads its
    // database) until the heal: its count from its first answer after it
    // (what it had in flight when cut off, before anybody else led, is
    // not counted against it).
    let healed = Instant::now();
    while before.iter().any(Option::is_none) && healed.elapsed() < Duration::from_secs(10) {
        let now = published(&http, &urls).await;
        before = before.into_iter().zip(now).map(|(b, n)| b.or(n)).collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(WATCH_AFTER_HEAL).await;
    let after_heal = published(&http, &urls).await;
    let mut publishing = Vec::new();
    for ((l, _), (b, a)) in urls.iter().zip(before.iter().zip(&after_heal)) {
        let (Some(b), Some(a)) = (b, a) else {
            anyhow::bail!("{l}'s count of published rows could not be read");
        };
        if a > b {
            publishing.push(format!("{l} published {}", a - b));
        }
    }
    anyhow::ensure!(
        publishing.len() <= 1,
        "{} relays of {service} published between {}'s lead and {} s after {label}'s partition healed: {}",
        publishing.len(),
        instance_label(service, successor),
        WATCH_AFTER_HEAL.as_secs(),
        publishing.join(", ")
    );
    Ok(format!(
        "{label} partitioned ({cut:?}); {} led after {:.1} s; from then on: {}",
        instance_label(service, successor),
        after.as_secs_f64(),
        if publishing.is_empty() {
            "nobody published".to_owned()
        } else {
            publishing.join(", ")
        }
    ))
}

/// Every byte between every service instance and PostgreSQL `ms`
/// milliseconds late (plus up to half again) for `duration`.
pub async fn slow_database(stack: &Stack, duration: Duration, ms: u64) -> Result<()> {
    let proxies: Vec<_> = SERVICES
        .iter()
        .flat_map(|(s, _)| (1..=stack.instances(s)).filter_map(|i| stack.database_proxy(s, i)))
        .collect();
    anyhow::ensure!(
        !proxies.is_empty(),
        "the stack has no database proxies (StackOptions::database_proxies)"
    );
    for p in &proxies {
        p.set(Mode::Delay {
            delay: Duration::from_millis(ms),
            jitter: Duration::from_millis(ms / 2),
        });
    }
    tokio::time::sleep(duration).await;
    for p in &proxies {
        p.set(Mode::Pass);
    }
    Ok(())
}

/// The instance of `service` whose connection holds its relay's advisory
/// lock, and that connection's client port (the proxy's port to the
/// server), as the server sees it now.
pub async fn relay_leader(stack: &Stack, service: &str) -> Result<Option<(usize, u16)>> {
    let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", pg_server())).await?;
    let ports: Vec<i32> = sqlx::query_scalar(
        "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a USING (pid)
         WHERE l.locktype = 'advisory' AND l.granted AND a.datname = $1",
    )
    .bind(stack.database(service))
    .fetch_all(&mut admin)
    .await?;
    let _ = admin.close().await;
    for port in ports {
        let Ok(port) = u16::try_from(port) else { continue };
        for i in 1..=stack.instances(service) {
            if stack
                .database_proxy(service, i)
                .is_some_and(|p| p.upstream_ports().contains(&port))
            {
                return Ok(Some((i, port)));
            }
        }
    }
    Ok(None)
}

/// Each instance's count of published rows, `None` where its `/metrics`
/// did not answer with a success within 3 s.
async fn published(http: &reqwest::Client, urls: &[(String, String)]) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    for (_, url) in urls {
        // A counter nobody incremented yet is absent: 0 of an answer.
        let text = async {
            http.get(format!("{url}/metrics"))
                .send()
                .await?
                .error_for_status()?
                .text()
                .await
        };
        out.push(match tokio::time::timeout(Duration::from_secs(3), text).await {
            Ok(Ok(text)) => Some(metric_sum(&text, PUBLISHED)),
            _ => None,
        });
    }
    out
}
