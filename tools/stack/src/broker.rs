//! The stack's own Kafka nodes (`infra/kafka/broker.sh`): one node, or a
//! cluster of three (`StackOptions::brokers`), started on fixed or free
//! ports, each killed, paused and restarted on its ports and data. A shared
//! broker is only an address: the stack never starts or stops it.

use std::{process::Stdio, time::Duration};

use anyhow::{Context, Result};
use omnisaga_runtime::catalog::client::ClientSecurity;
use rand::Rng as _;
use tokio::process::{Child, Command};

use crate::{
    kafka::KafkaAccess,
    netfault::Proxy,
    process::{free_port, open_log, wait_tcp},
    repo_root, Broker, Stack, StackOptions,
};

/// How long a follower of the stack's cluster may lag before it leaves the
/// in-sync replicas (`replica.lag.time.max.ms`): 10 s, so a pause past it
/// fits in a short test.
pub const CLUSTER_REPLICA_LAG: Duration = Duration::from_secs(10);

/// The stack's own Kafka nodes and the network-fault proxy in front of
/// its one node, if any.
pub(crate) struct OwnBroker {
    pub(crate) nodes: Vec<Node>,
    pub(crate) proxy: Option<Proxy>,
    /// What every node of a cluster is started with (the quorum, the
    /// cluster id, the admin's password); empty for one node.
    cluster_env: Vec<(&'static str, String)>,
}

/// One Kafka node: its id (1 to n), process and ports.
pub(crate) struct Node {
    pub(crate) id: i32,
    pub(crate) child: Child,
    port: u16,
    controller_port: u16,
    /// Clients are told this port, not `port`, when there is a proxy.
    advertised_port: u16,
}

impl Node {
    /// `broker` for node 1, `broker-N` for node N: its directory and log.
    pub(crate) fn label(&self) -> String {
        label(self.id)
    }
}

fn label(id: i32) -> String {
    crate::instance_label("broker", id as usize)
}

/// The broker `options` ask for, as its admin, and the stack's own, if it
/// has one (broker 9092 and controller 9093 with fixed ports, else free
/// ones; behind a proxy, the proxy takes the broker's port and the broker
/// another; a cluster always on free ports). The shared broker's admin is
/// `make test`'s (`OMNISAGA_TEST_KAFKA_USERNAME`,
/// `OMNISAGA_TEST_KAFKA_PASSWORD_FILE`); the stack's own broker's is
/// `admin`, its password in the first node's directory
/// (`infra/kafka/broker.sh`).
pub(crate) async fn start(options: &StackOptions) -> Result<(KafkaAccess, Option<OwnBroker>)> {
    let proxied = match &options.broker {
        Broker::Shared(brokers) => {
            let admin = ClientSecurity::test_broker_admin()?;
            return Ok((KafkaAccess::new(brokers, admin), None));
        }
        Broker::Own => false,
        Broker::OwnBehindProxy => true,
    };
    if options.brokers > 1 {
        anyhow::ensure!(
            !proxied,
            "a cluster of {} brokers has no network-fault proxy: use Broker::Own",
            options.brokers
        );
        return start_cluster(options).await;
    }
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
    let mut node = Node {
        id: 1,
        child: spawn(options, 1, port, controller_port, outer, &[])?,
        port,
        controller_port,
        advertised_port: outer,
    };
    wait(options, &mut node).await?;
    let admin = ClientSecurity::scram_from_file("admin", options.dir.join("broker/admin.password"))?;
    let kafka = KafkaAccess::new(&format!("127.0.0.1:{outer}"), admin);
    proxy.as_ref().inspect(|p| {
        eprintln!(
            "[stack] the broker listens on {port}, behind a network-fault proxy on {}",
            p.port
        )
    });
    let broker = OwnBroker {
        nodes: vec![node],
        proxy,
        cluster_env: Vec::new(),
    };
    Ok((kafka, Some(broker)))
}

/// `options.brokers` nodes, each broker and controller (a quorum of all of
/// them), internal topics replicated to each, one admin password.
async fn start_cluster(options: &StackOptions) -> Result<(KafkaAccess, Option<OwnBroker>)> {
    let n = options.brokers as i32;
    let ports: Vec<(u16, u16)> = (0..n)
        .map(|_| Ok((free_port()?, free_port()?)))
        .collect::<Result<_>>()?;
    let voters = ports
        .iter()
        .zip(1..)
        .map(|((_, c), id)| format!("{id}@127.0.0.1:{c}"))
        .collect::<Vec<_>>()
        .join(",");
    let password: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    let cluster_id = uuid::Uuid::new_v4().simple().to_string()[..22].to_owned();
    let cluster_env = vec![
        ("KAFKA_QUORUM_VOTERS", voters),
        ("KAFKA_CLUSTER_ID", cluster_id),
        ("KAFKA_ADMIN_PASSWORD", password),
        ("KAFKA_INTERNAL_REPLICATION", n.to_string()),
        (
            "KAFKA_REPLICA_LAG_MS",
            CLUSTER_REPLICA_LAG.as_millis().to_string(),
        ),
    ];
    let mut nodes = Vec::new();
    // All started before any is waited for: none serves before a quorum.
    for (&(port, controller_port), id) in ports.iter().zip(1..) {
        nodes.push(Node {
            id,
            child: spawn(options, id, port, controller_port, port, &cluster_env)?,
            port,
            controller_port,
            advertised_port: port,
        });
    }
    for node in &mut nodes {
        wait(options, node).await?;
    }
    let admin = ClientSecurity::scram_from_file("admin", options.dir.join("broker/admin.password"))?;
    let brokers = ports
        .iter()
        .map(|(p, _)| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    eprintln!("[stack] a cluster of {n} Kafka nodes on {brokers}");
    let kafka = KafkaAccess::new(&brokers, admin);
    Ok((
        kafka,
        Some(OwnBroker {
            nodes,
            proxy: None,
            cluster_env,
        }),
    ))
}

/// Starts Kafka node `id` on `port` (controller on `controller_port`,
/// clients told `advertised_port`).
fn spawn(
    options: &StackOptions,
    id: i32,
    port: u16,
    controller_port: u16,
    advertised_port: u16,
    env: &[(&'static str, String)],
) -> Result<Child> {
    let log = open_log(&options.dir.join(format!("logs/{}.log", label(id))))?;
    let script = repo_root()?.join("infra/kafka/broker.sh");
    Command::new("bash")
        .arg(&script)
        .arg(options.dir.join(label(id)))
        .args([port.to_string(), controller_port.to_string()])
        .env("KAFKA_ADVERTISED_PORT", advertised_port.to_string())
        .env("KAFKA_NODE_ID", id.to_string())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("Failed to run {}", script.display()))
}

/// Waits until `node` accepts connections.
async fn wait(options: &StackOptions, node: &mut Node) -> Result<()> {
    let log_path = options.dir.join(format!("logs/{}.log", node.label()));
    // A JVM on a busy 2-core machine: formatting and starting take seconds.
    wait_tcp(
        &format!("127.0.0.1:{}", node.port),
        &mut node.child,
        &log_path,
        Duration::from_secs(90),
    )
    .await
    .with_context(|| format!("the Kafka node {} did not start", node.id))
}

impl Stack {
    /// Kills the stack's own broker, every node of it (SIGKILL), as a
    /// crash or a lost host would.
    pub async fn kill_broker(&mut self) -> Result<()> {
        let broker = self
            .broker
            .as_mut()
            .context("the broker is shared: not the stack's to kill")?;
        for node in &mut broker.nodes {
            node.child.kill().await?;
        }
        Ok(())
    }

    /// Starts the stack's own broker (every node of it) again on the same
    /// ports and data.
    pub async fn restart_broker(&mut self) -> Result<()> {
        let ids: Vec<i32> = self
            .broker
            .as_ref()
            .context("the broker is shared")?
            .nodes
            .iter()
            .map(|n| n.id)
            .collect();
        for id in ids {
            self.restart_broker_node(id).await?;
        }
        Ok(())
    }

    /// Kills node `id` (1 to the stack's brokers) of the stack's own broker.
    pub async fn kill_broker_node(&mut self, id: i32) -> Result<()> {
        self.node(id)?.child.kill().await?;
        Ok(())
    }

    /// Starts node `id` again on its ports and data, and waits until it
    /// accepts connections.
    pub async fn restart_broker_node(&mut self, id: i32) -> Result<()> {
        let options = self.options.clone();
        let env = self
            .broker
            .as_ref()
            .context("the broker is shared")?
            .cluster_env
            .clone();
        let node = self.node(id)?;
        node.child = spawn(
            &options,
            id,
            node.port,
            node.controller_port,
            node.advertised_port,
            &env,
        )?;
        wait(&options, node).await
    }

    /// The process id of node `id` of the stack's own broker.
    pub fn broker_node_pid(&mut self, id: i32) -> Result<u32> {
        self.node(id)?.child.id().context("the node is not running")
    }

    /// How many nodes the stack's own broker has (0 when shared).
    pub fn broker_nodes(&self) -> usize {
        self.broker.as_ref().map_or(0, |b| b.nodes.len())
    }

    fn node(&mut self, id: i32) -> Result<&mut Node> {
        self.broker
            .as_mut()
            .context("the broker is shared: not the stack's")?
            .nodes
            .iter_mut()
            .find(|n| n.id == id)
            .with_context(|| format!("the stack's broker has no node {id}"))
    }

    /// The address of the broker's controller listener: the stack's own
    /// (first) node's, or the shared broker's from `OMNISAGA_TEST_KAFKA_CONTROLLER`
    /// (`make test` sets it).
    pub fn controller_address(&self) -> Option<String> {
        match &self.broker {
            Some(broker) => broker
                .nodes
                .first()
                .map(|n| format!("127.0.0.1:{}", n.controller_port)),
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
