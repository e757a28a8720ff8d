//! The stack's own Kafka node (`infra/kafka/broker.sh`): started on fixed or
//! free ports, killed and restarted on the same ports and data. A shared
//! broker is only an address: the stack never starts or stops it.

use std::{process::Stdio, time::Duration};

use anyhow::{Context, Result};
use omnisaga_runtime::catalog::client::ClientSecurity;
use tokio::process::{Child, Command};

use crate::{
    kafka::KafkaAccess,
    netfault::Proxy,
    process::{free_port, open_log, wait_tcp},
    repo_root, Broker, Stack, StackOptions,
};

/// The stack's own Kafka node: its process, the ports it listens on, and
/// the network-fault proxy in front of it, if any.
pub(crate) struct OwnBroker {
    pub(crate) child: Child,
    port: u16,
    controller_port: u16,
    /// Clients are told this port, not `port`, when there is a proxy.
    advertised_port: u16,
    pub(crate) proxy: Option<Proxy>,
}

/// The broker `options` ask for, as its admin, and the stack's own, if it
/// has one (broker 9092 and controller 9093 with fixed ports, else free
/// ones; behind a proxy, the proxy takes the broker's port and the broker
/// another). The shared broker's admin is `make test`'s
/// (`OMNISAGA_TEST_KAFKA_USERNAME`, `OMNISAGA_TEST_KAFKA_PASSWORD_FILE`);
/// the stack's own broker's is `admin`, its password in the broker's
/// directory (`infra/kafka/broker.sh`).
pub(crate) async fn start(options: &StackOptions) -> Result<(KafkaAccess, Option<OwnBroker>)> {
    let proxied = match &options.broker {
        Broker::Shared(brokers) => {
            let admin = ClientSecurity::test_broker_admin()?;
            return Ok((KafkaAccess::new(brokers, admin), None));
        }
        Broker::Own => false,
        Broker::OwnBehindProxy => true,
    };
    let (outer, controller_port) = if options.fixed_ports {
        (9092, 9093)
    } else {
        (free_port()?, free_port()?)
    };
    let port = if proxied { free_port()? } else { outer };
    let proxy = if proxied {
        Some(Proxy::start(outer, port).await?)
    } else {
        None
    };
    let broker = OwnBroker {
        child: spawn(options, port, controller_port, outer).await?,
        port,
        controller_port,
        advertised_port: outer,
        proxy,
    };
    let admin = ClientSecurity::scram_from_file("admin", options.dir.join("broker/admin.password"))?;
    let kafka = KafkaAccess::new(&format!("127.0.0.1:{}", broker.advertised_port), admin);
    broker.proxy.as_ref().inspect(|p| {
        eprintln!(
            "[stack] the broker listens on {port}, behind a network-fault proxy on {}",
            p.port
        )
    });
    Ok((kafka, Some(broker)))
}

/// Starts the stack's own Kafka node on `port` (controller on
/// `controller_port`, clients told `advertised_port`) and waits until it
/// accepts connections.
async fn spawn(
    options: &StackOptions,
    port: u16,
    controller_port: u16,
    advertised_port: u16,
) -> Result<Child> {
    let log_path = options.dir.join("logs/broker.log");
    let log = open_log(&log_path)?;
    let script = repo_root()?.join("infra/kafka/broker.sh");
    let mut broker = Command::new("bash")
        .arg(&script)
        .arg(options.dir.join("broker"))
        .args([port.to_string(), controller_port.to_string()])
        .env("KAFKA_ADVERTISED_PORT", advertised_port.to_string())
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
        let broker = self
            .broker
            .as_mut()
            .context("the broker is shared: not the stack's to kill")?;
        broker.child.kill().await?;
        Ok(())
    }

    /// Starts the stack's own broker again on the same ports and data.
    pub async fn restart_broker(&mut self) -> Result<()> {
        let broker = self.broker.as_mut().context("the broker is shared")?;
        broker.child = spawn(
            &self.options,
            broker.port,
            broker.controller_port,
            broker.advertised_port,
        )
        .await?;
        Ok(())
    }

    /// The address of the broker's controller listener: the stack's own
    /// node's, or the shared broker's from `OMNISAGA_TEST_KAFKA_CONTROLLER`
    /// (`make test` sets it).
    pub fn controller_address(&self) -> Option<String> {
        match &self.broker {
            Some(broker) => Some(format!("127.0.0.1:{}", broker.controller_port)),
            None => std::env::var("OMNISAGA_TEST_KAFKA_CONTROLLER")
                .ok()
                .filter(|a| !a.is_empty()),
        }
    }

    /// The network-fault proxy between every client and the stack's
    /// broker, when the stack has one ([`Broker::OwnBehindProxy`]).
    pub fn network(&self) -> Option<&Proxy> {
        self.broker.as_ref()?.proxy.as_ref()
    }
}
