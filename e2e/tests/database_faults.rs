//! The fault suite with PostgreSQL behind a fault proxy per service
//! instance: two instances of the order service, orders placed at a steady
//! rate while the instance whose outbox relay leads is silently cut off
//! from its database past the keepalive that ends its lock (its process
//! running on), then the new leader's lock connection alone (its pool
//! working on), then every service's database traffic is slowed with
//! jitter (long transactions, pools run dry). Another relay must take the
//! lead, only one may publish once the partition heals, and every
//! invariant of `omnisaga_e2e::chaos::check` must hold (the report is kept
//! in target/test-artefacts/database-faults.json).

use std::time::Duration;

use anyhow::Result;
use omnisaga_e2e::{
    chaos::{self, Fault, RunOptions},
    Stack,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_leader_cut_off_from_its_database_hands_over_and_nothing_is_lost() -> Result<()> {
    let faults = vec![
        Fault::PartitionRelayLeader("order", Duration::from_secs(35)),
        Fault::PartitionRelayLock("order", Duration::from_secs(35)),
        Fault::SlowDatabase(Duration::from_secs(10), 150),
    ];
    let mut stack = Stack::start(chaos::stack_options_for(&faults, 1)).await?;
    let options = RunOptions::short(faults)?;
    let report = chaos::run(&mut stack, &options).await;
    let passed = report.as_ref().is_ok_and(|r| r.passed);
    stack.finish(passed).await?;
    report?.conclude("database-faults.json")
}
