//! Scale out under faults: three instances of payment, warehouse and
//! notification and two of order and analytics, each service's instances in
//! one consumer group on one database, the order API (and every service's)
//! behind a round-robin balancer. Orders are placed at a steady rate while
//! one instance of each service is killed and comes back a few seconds
//! later, every instance is restarted in turn as a release rolls out,
//! random instances are killed, and broker and database connections are
//! cut; then every invariant of the fault suite must hold, and every
//! instance must have had partitions to consume.

use std::time::Duration;

use anyhow::{ensure, Result};
use omnisaga_e2e::{
    chaos::{self, Fault, RunOptions},
    instance_label, Stack, SERVICES,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_instances_of_every_service_lose_nothing_when_instances_die_and_roll() -> Result<()> {
    let options = chaos::stack_options()
        .instances("payment", 3)
        .instances("warehouse", 3)
        .instances("notification", 3)
        .instances("order", 2)
        .instances("analytics", 2);
    let mut stack = Stack::start(options).await?;
    let run = RunOptions::short(vec![
        Fault::Kill("payment"),
        Fault::Kill("order"),
        Fault::Kill("warehouse"),
        Fault::RollingRestart,
        Fault::Kill("notification"),
        Fault::Kill("analytics"),
        Fault::NetworkCut,
        Fault::CutDatabaseConnections,
        Fault::KillRandomly(Duration::from_secs(15)),
    ])?;
    let report = chaos::run(&mut stack, &run).await;
    // Every instance took part: each was assigned partitions of its
    // service's topics at least once.
    let mut idle = Vec::new();
    for (service, _) in SERVICES {
        for instance in 1..=stack.instances(service) {
            let label = instance_label(service, instance);
            let log = std::fs::read_to_string(stack.log_path(&label)).unwrap_or_default();
            if !log
                .lines()
                .any(|l| l.contains("partitions assigned") && l.contains('['))
            {
                idle.push(label);
            }
        }
    }
    let passed = report.as_ref().is_ok_and(|r| r.passed) && idle.is_empty();
    stack.finish(passed).await?;
    report?.conclude("instances.json")?;
    ensure!(idle.is_empty(), "instances never assigned a partition: {idle:?}");
    Ok(())
}
