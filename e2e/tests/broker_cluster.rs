//! The fault suite on a cluster of three Kafka nodes (each broker and
//! controller; topics replicated three times, min.insync.replicas 2):
//! orders placed at a steady rate while the leader of the order events'
//! first partition is killed twice (each time started again and back in
//! sync), paused with SIGSTOP past `replica.lag.time.max.ms` as a long GC
//! pause would, and a service killed meanwhile; another node must lead
//! each time, no acknowledged outbox row may be lost, the relays recover,
//! and every invariant of `omnisaga_e2e::chaos::check` must hold (the
//! report is kept in target/test-artefacts/broker-cluster.json).

use std::time::Duration;

use anyhow::Result;
use omnisaga_e2e::{
    chaos::{self, Fault, RunOptions},
    Stack,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_three_loses_no_acknowledged_row_when_partition_leaders_die_or_stall() -> Result<()> {
    let faults = vec![
        Fault::KillPartitionLeader(2),
        Fault::PausePartitionLeader(Duration::from_secs(12)),
        Fault::Kill("payment"),
    ];
    let mut stack = Stack::start(chaos::stack_options_for(&faults, 3)).await?;
    let options = RunOptions::short(faults)?;
    let report = chaos::run(&mut stack, &options).await;
    let passed = report.as_ref().is_ok_and(|r| r.passed);
    stack.finish(passed).await?;
    report?.conclude("broker-cluster.json")
}
