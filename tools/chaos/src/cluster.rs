//! Faults of the stack's broker cluster (`StackOptions::brokers`, three
//! nodes, topics replicated three times with min.insync.replicas 2): the
//! leader of a partition killed (SIGKILL) again and again, each time
//! started again and waited for until it is back in sync; and the leader
//! paused (SIGSTOP, a long GC pause) past `replica.lag.time.max.ms`, so
//! the controller fences it and another replica leads, then resumed.

use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::time::Instant;

use omnisaga_stack::{Stack, CLUSTER_REPLICA_LAG};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Longest a new leader may take to be elected, or a node to be back in sync.
const DEADLINE: Duration = Duration::from_secs(90);

/// The topic and partition whose leader the faults take: the order
/// events' first (every order's saga starts there).
fn watched(stack: &Stack) -> (String, i32) {
    (format!("{}orders.v1", stack.topic_prefix()), 0)
}

/// The partition's leader and in-sync replicas, as the cluster's metadata
/// says now.
async fn leadership(stack: &Stack) -> Result<(i32, Vec<i32>)> {
    let (topic, partition) = watched(stack);
    let kafka = stack.kafka.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = kafka.admin_client().set("log_level", "3").create()?;
        let metadata = consumer.fetch_metadata(Some(&topic), TIMEOUT)?;
        let p = metadata
            .topics()
            .first()
            .and_then(|t| t.partitions().iter().find(|p| p.id() == partition))
            .with_context(|| format!("no partition {topic}[{partition}]"))?;
        anyhow::Ok((p.leader(), p.isr().to_vec()))
    })
    .await?
}

/// Waits until `done` holds of the partition's leadership.
async fn until(stack: &Stack, what: &str, done: impl Fn(i32, &[i32]) -> bool) -> Result<(i32, Vec<i32>)> {
    let started = Instant::now();
    loop {
        if let Ok((leader, isr)) = leadership(stack).await {
            if done(leader, &isr) {
                return Ok((leader, isr));
            }
        }
        anyhow::ensure!(
            started.elapsed() < DEADLINE,
            "{what}: not within {} s",
            DEADLINE.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Kills the partition's leader `times` times, each time waiting for
/// another to lead, starting it again and waiting until all replicas are
/// in sync; returns what happened.
pub async fn kill_leader(stack: &mut Stack, times: u32) -> Result<String> {
    let replicas = stack.broker_nodes();
    anyhow::ensure!(
        replicas >= 3,
        "the stack's broker is no cluster (StackOptions::brokers)"
    );
    let mut seen = Vec::new();
    for _ in 0..times {
        let (leader, _) = until(stack, "every replica in sync", |_, isr| isr.len() >= replicas).await?;
        let killed = Instant::now();
        stack.kill_broker_node(leader).await?;
        let (next, _) = until(stack, "a new leader", |l, _| l >= 0 && l != leader).await?;
        seen.push(format!(
            "node {leader} killed, node {next} led after {:.1} s",
            killed.elapsed().as_secs_f64()
        ));
        stack.restart_broker_node(leader).await?;
    }
    until(stack, "every replica in sync", |_, isr| isr.len() >= replicas).await?;
    Ok(seen.join("; "))
}

/// Longest a paused leader stays paused waiting for another node to lead.
/// The controller fences a broker that stopped heartbeating after
/// `broker.session.timeout.ms` (9 s); when the paused node is also the
/// active controller, a new controller must be elected first, and on a
/// loaded machine the two take longer than a pause of 12 s.
const LEADER_MOVE_WITHIN: Duration = Duration::from_secs(45);

/// Pauses the partition's leader (SIGSTOP) for `duration`, past
/// [`CLUSTER_REPLICA_LAG`], and longer if another node does not lead by
/// then (up to [`LEADER_MOVE_WITHIN`]), then resumes it and waits until all
/// replicas are in sync; fails unless another node led meanwhile.
pub async fn pause_leader(stack: &mut Stack, duration: Duration) -> Result<String> {
    let replicas = stack.broker_nodes();
    anyhow::ensure!(
        replicas >= 3,
        "the stack's broker is no cluster (StackOptions::brokers)"
    );
    anyhow::ensure!(
        duration > CLUSTER_REPLICA_LAG,
        "a pause of {} s is within replica.lag.time.max.ms ({} s)",
        duration.as_secs(),
        CLUSTER_REPLICA_LAG.as_secs()
    );
    let (leader, _) = until(stack, "every replica in sync", |_, isr| isr.len() >= replicas).await?;
    let pid = stack.broker_node_pid(leader)?;
    let paused = Instant::now();
    omnisaga_stack::process::signal("STOP", pid).await?;
    let moved = tokio::time::timeout(
        duration.max(LEADER_MOVE_WITHIN),
        until(stack, "a new leader", |l, _| l >= 0 && l != leader),
    )
    .await;
    let took = paused.elapsed();
    tokio::time::sleep(duration.saturating_sub(paused.elapsed())).await;
    omnisaga_stack::process::signal("CONT", pid).await?;
    let paused_for = paused.elapsed();
    let (next, _) = moved.map_err(|_| {
        anyhow::anyhow!(
            "node {leader} paused {:.1} s, and still led",
            paused_for.as_secs_f64()
        )
    })??;
    until(stack, "every replica in sync", |_, isr| isr.len() >= replicas).await?;
    Ok(format!(
        "node {leader} paused {:.1} s; node {next} led by {:.1} s; all in sync again {:.1} s after the pause",
        paused_for.as_secs_f64(),
        took.as_secs_f64(),
        (paused.elapsed() - paused_for).as_secs_f64()
    ))
}
