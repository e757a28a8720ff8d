//! The stack's own Kafka node (`infra/kafka/broker.sh`): started on fixed or
//! free ports, killed and restarted on the same ports and data. A shared
//! broker is only an address: the stack never starts or stops it.

use std::{process::Stdio, time::Duration};

use anyhow::{Context, Result};
use omnisaga_runtime::catalog::client::ClientSecurity;
use tokio::process::{Child, Command};

use crate::{
    kafka::KafkaAccess,
    process::{free_port, open_log, wait_tcp},
    repo_root, Broker, Stack, StackOptions,
};

/// The broker `options` ask for, as its admin, and, for the stack's own,
/// its process and controller port (broker 9092 and controller 9093 with
/// fixed ports, else free ones). The shared broker's admin is `make test`'s
/// (`OMNISAGA_TEST_KAFKA_USERNAME`, `OMNISAGA_TEST_KAFKA_PASSWORD_FILE`);
/// the stack's own broker's is `admin`, its password in the broker's
/// directory (`infra/kafka/broker.sh`).
pub(crate) async fn start(options: &StackOptions) -> Result<(KafkaAccess, Option<(Child, u16)>)> {
    Ok(match &options.broker {
        Broker::Shared(brokers) => {
            let admin = ClientSecurity::test_broker_admin()?;
            (KafkaAccess::new(brokers, admin), None)
        }
        Broker::Own => {
            let (port, controller_port) = if options.fixed_ports {
                (9092, 9093)
            } else {
                (free_port()?, free_port()?)
            };
            let child = spawn(options, port, controller_port).await?;
            let admin = ClientSecurity::scram_from_file("admin", options.dir.join("broker/admin.password"))?;
            (
                KafkaAccess::new(&format!("127.0.0.1:{port}"), admin),
                Some((child, controller_port)),
            )
        }
    })
}

/// Starts the stack's own Kafka node on `port` (controller on
/// `controller_port`) and waits until it accepts connections.
async fn spawn(options: &StackOptions, port: u16, controller_port: u16) -> Result<Child> {
    let log_path = options.dir.join("logs/broker.log");
    let log = open_log(&log_path)?;
    let script = repo_root()?.join("infra/kafka/broker.sh");
    let mut broker = Command::new("bash")
        .arg(&script)
        .arg(options.dir.join("broker"))
        .args([port.to_string(), controller_port.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("Failed to run {}", script.display()))?;
    // A JVM on a busy 2-core machine: formatting and starting take seconds.
    wait_tcp(
        &format!("127.0.0.1:{port}"),
        &mut broker,
        &log_path,
        Duration::from_secs(90),
    )
    .await
    .context("the Kafka broker did not start")?;
    Ok(broker)
}

impl Stack {
    /// Kills the stack's own broker (SIGKILL), as a crash or a lost host would.
    pub async fn kill_broker(&mut self) -> Result<()> {
        let (broker, _) = self
            .broker
            .as_mut()
            .context("the broker is shared: not the stack's to kill")?;
        broker.kill().await?;
        Ok(())
    }

    /// Starts the stack's own broker again on the same ports and data.
    pub async fn restart_broker(&mut self) -> Result<()> {
        let (_, controller_port) = self.broker.as_ref().context("the broker is shared")?;
        let controller_port = *controller_port;
        let port = self
            .kafka
            .brokers
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("broker address has no port")?;
        let child = spawn(&self.options, port, controller_port).await?;
        self.broker = Some((child, controller_port));
        Ok(())
    }
}
