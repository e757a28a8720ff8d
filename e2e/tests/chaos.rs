//! The fault suite's short form: one stack of its own, orders placed at a
//! steady rate (some declined, some cancelled by their customer) while every
//! service is killed with SIGKILL in turn and a random one for a while, the
//! broker is killed and restarted, the network to it is slow, silent and
//! reset, every database connection is cut, the payment provider is down,
//! and poison records land on the topics; then, once the stack is
//! quiet, every invariant of `omnisaga_e2e::chaos::check` must hold (the
//! report is kept in target/test-artefacts/chaos.json). `make chaos` runs
//! the longer suite, `make soak` all faults for ten minutes.

use std::time::Duration;

use anyhow::Result;
use omnisaga_e2e::{
    chaos::{self, Fault, RunOptions},
    Stack,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_charged_twice_or_left_stuck_under_faults() -> Result<()> {
    let mut stack = Stack::start(chaos::stack_options()).await?;
    let options = RunOptions::short(vec![
        Fault::Kill("payment"),
        Fault::Kill("warehouse"),
        Fault::KillBroker,
        Fault::NetworkDelay(Duration::from_secs(4), 150),
        Fault::Kill("order"),
        Fault::NetworkStall(Duration::from_secs(4)),
        Fault::NetworkCut,
        Fault::CutDatabaseConnections,
        Fault::Poison,
        Fault::ProviderDown(Duration::from_secs(4)),
        Fault::Overload(Duration::from_secs(4)),
        Fault::Kill("notification"),
        Fault::Kill("analytics"),
        Fault::KillRandomly(Duration::from_secs(12)),
    ])?;
    let report = chaos::run(&mut stack, &options).await;
    let passed = report.as_ref().is_ok_and(|r| r.passed);
    stack.finish(passed).await?;
    report?.conclude("chaos.json")
}
