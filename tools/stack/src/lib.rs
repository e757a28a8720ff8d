//! Starts the whole omnisaga stack as real processes on this machine: an
//! Apache Kafka node (or a broker already running), one database and role per
//! service in the local PostgreSQL, and the five service binaries, each
//! waited for until `/readyz` answers.
//! `make run` (the `omnisaga-stack` binary), the e2e tests, the benchmark
//! (`tools/bench`) and the fault suite (`tools/chaos`) all start the stack
//! through [`Stack::start`].
//!
//! What they get: a [`Stack`] started from [`StackOptions`] (its URLs,
//! logs and processes; services, broker and trace viewer stopped, killed and
//! started again), a [`client`] of its HTTP APIs, and the checks of its
//! [`logs`] and [`traces`], and a [`Prometheus`] scraping it
//! ([`prometheus`]). [`bin_dir`], [`repo_root`] and [`pg_server`] say
//! where the build's binaries, the clone and the PostgreSQL server are.

pub mod balancer;
pub mod client;
pub mod failpoints;
pub mod logs;
pub mod netfault;
pub mod prometheus;
pub mod traces;
pub mod webhook_sink;

pub use kafka::{describe_cluster_unauthenticated, KafkaAccess, KafkaUsers};

mod broker;
mod cli;
pub use broker::CLUSTER_REPLICA_LAG;
mod database;
mod env;
mod kafka;
pub mod local_state;
pub mod process;
pub use process::{Stopped, STOP_GRACE};
pub use prometheus::Prometheus;
mod stack;
mod viewer;

use std::{collections::BTreeMap, path::PathBuf};

use tokio::process::Child;

pub use database::{runtime_role, ANALYST};
pub use env::{bin_dir, pg_password, pg_server, repo_root};
pub use stack::{admin_key, client_with, OPERATOR_SCOPES};

/// The services in start order, with their default HTTP ports.
pub const SERVICES: [(&str, u16); 5] = [
    ("order", 8080),
    ("payment", 8081),
    ("warehouse", 8082),
    ("notification", 8083),
    ("analytics", 8084),
];

/// A test stack's database prefix, `e2e_` and 16 hex digits: the first 12
/// are the creation time in milliseconds (a UUIDv7's), so `make test` can
/// drop the databases of runs long over (`infra/scripts/test.sh`) without
/// asking anything but their names. The last three are random: two stacks
/// a test binary starts in the same millisecond get UUIDv7s alike in their
/// first 16 digits (the counter that orders them is further on).
pub fn test_db_prefix() -> String {
    let time = uuid::Uuid::now_v7().simple().to_string();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("e2e_{}{}", &time[..13], &random[..3])
}

/// Writes `payload` straight to `topic` with `key`, as a broken or foreign
/// producer would (tests' poison messages and hand-made events), as the
/// broker's admin.
pub async fn produce_raw(kafka: &KafkaAccess, topic: &str, key: &str, payload: &[u8]) -> anyhow::Result<()> {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = kafka.admin_client().create()?;
    let record = FutureRecord::to(topic).key(key).payload(payload);
    producer
        .send(record, std::time::Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)?;
    Ok(())
}

/// Where the stack's broker comes from.
#[derive(Debug, Clone)]
pub enum Broker {
    /// A Kafka node of the stack's own (`infra/kafka/broker.sh`), its data in
    /// the stack's directory under `broker/`: it survives a restart, and the
    /// stack can kill and restart it.
    Own,
    /// The stack's own node behind a network-fault proxy
    /// ([`netfault::Proxy`]): the broker tells clients the proxy's port, so
    /// every byte to and from it passes the proxy ([`Stack::network`]).
    OwnBehindProxy,
    /// A broker already running at this bootstrap address, shared with other
    /// stacks (give each its own [`StackOptions::topic_prefix`]).
    Shared(String),
}

impl Broker {
    /// The broker `make test` started for the whole run (`OMNISAGA_TEST_KAFKA`),
    /// else one of the stack's own.
    pub fn for_tests() -> Self {
        match std::env::var("OMNISAGA_TEST_KAFKA") {
            Ok(brokers) if !brokers.is_empty() => Self::Shared(brokers),
            _ => Self::Own,
        }
    }
}

/// How to start a [`Stack`]: where it keeps its files, which databases,
/// broker, topics and ports it uses, and extra environment for its services.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Working directory for logs and broker data.
    pub dir: PathBuf,
    /// Database names are `<db_prefix>_<service>`.
    pub db_prefix: String,
    /// Drop and recreate the databases before starting.
    pub fresh_databases: bool,
    pub broker: Broker,
    /// Prefix of every topic and consumer group (`KAFKA_TOPIC_PREFIX`).
    pub topic_prefix: String,
    /// Fixed ports (broker 9092, its controller 9093, the services'
    /// defaults) or free ones.
    pub fixed_ports: bool,
    /// Extra environment per service name ("*" for all).
    pub env: BTreeMap<String, Vec<(String, String)>>,
    /// Instances per service name (1 when not named): more than one run
    /// behind a [`balancer::Balancer`] on the service's address, in one
    /// consumer group and on one database.
    pub instances: BTreeMap<String, usize>,
    /// Nodes of the stack's own broker: 1, or a cluster (3: each broker
    /// and controller, topics replicated 3 times with
    /// min.insync.replicas 2). A cluster has no network-fault proxy.
    pub brokers: usize,
    /// Each service instance reaches PostgreSQL through a network-fault
    /// proxy of its own ([`Stack::database_proxy`]), on a Unix socket in
    /// `<dir>/pg/<instance>/` (`DATABASE_URL` `?host=` that directory).
    pub database_proxies: bool,
    /// Notification sends its messages to a [`webhook_sink::WebhookSink`]
    /// the stack runs (`Stack::webhook`), which counts what reached the
    /// channel, rather than to its log.
    pub webhook_sink: bool,
    /// The balancers of services run as several instances pass over an
    /// instance whose `/readyz` is not 200, as a Kubernetes Service does
    /// (otherwise only over one that refuses connections).
    pub balance_on_readiness: bool,
}

impl StackOptions {
    /// A throwaway test stack: its files in the temporary directory, fresh
    /// databases and topics under a new [`test_db_prefix`], the run's broker
    /// ([`Broker::for_tests`]), free ports, and the relay's fallback poll at
    /// 200 ms. `Stack::finish` drops it all when its test passed.
    pub fn for_test() -> Self {
        let prefix = test_db_prefix();
        Self {
            dir: std::env::temp_dir().join(format!("omnisaga-{prefix}")),
            db_prefix: prefix.clone(),
            fresh_databases: true,
            broker: Broker::for_tests(),
            topic_prefix: format!("{prefix}."),
            fixed_ports: false,
            env: BTreeMap::new(),
            instances: BTreeMap::new(),
            brokers: 1,
            database_proxies: false,
            webhook_sink: false,
            balance_on_readiness: false,
        }
        .set_env("*", "OUTBOX_POLL_MS", "200")
    }

    /// The warehouse picks, packs and ships in these many milliseconds.
    pub fn warehouse_ms(self, pick: u32, pack: u32, ship: u32) -> Self {
        self.set_env("warehouse", "WAREHOUSE_PICK_MS", &pick.to_string())
            .set_env("warehouse", "WAREHOUSE_PACK_MS", &pack.to_string())
            .set_env("warehouse", "WAREHOUSE_SHIP_MS", &ship.to_string())
    }

    /// Runs `n` instances of `service`.
    pub fn instances(mut self, service: &str, n: usize) -> Self {
        self.instances.insert(service.to_owned(), n.max(1));
        self
    }

    /// How many instances of `service` run.
    pub fn instances_of(&self, service: &str) -> usize {
        self.instances.get(service).copied().unwrap_or(1).max(1)
    }

    /// Adds an environment variable for `service` ("*" for all, an
    /// instance's label such as "payment-2" for that instance alone).
    pub fn set_env(mut self, service: &str, key: &str, value: &str) -> Self {
        self.env
            .entry(service.to_owned())
            .or_default()
            .push((key.to_owned(), value.to_owned()));
        self
    }
}

/// A running instance of a service of the stack: its service's name, its
/// number (1 to the service's instances) and its own base URL.
pub struct Service {
    pub name: &'static str,
    pub instance: usize,
    pub url: String,
    /// Its admin listener (`ADMIN_HTTP_ADDR`): the admin and internal routes.
    pub admin_url: String,
    child: Child,
}

impl Service {
    /// `payment` for a service's first instance, `payment-2` for its second:
    /// the name of its log and process.
    pub fn label(&self) -> String {
        instance_label(self.name, self.instance)
    }
}

/// `name` for instance 1, `name-N` for instance N.
pub fn instance_label(name: &str, instance: usize) -> String {
    if instance <= 1 {
        name.to_owned()
    } else {
        format!("{name}-{instance}")
    }
}

/// The running stack. Its processes are killed when it is dropped;
/// [`Stack::stop`] stops them gracefully.
pub struct Stack {
    /// The broker's address and its admin's login.
    pub kafka: KafkaAccess,
    /// The services' and the analyst's users (`omnisaga kafka provision`);
    /// `None` when the broker has none.
    pub kafka_users: Option<KafkaUsers>,
    /// The trace viewer: Jaeger UI and query API.
    pub traces_url: String,
    otlp_endpoint: String,
    viewer: Child,
    pub services: Vec<Service>,
    /// The stack's own broker; `None` when shared.
    broker: Option<broker::OwnBroker>,
    /// The key the stack's tokens are signed with (`<dir>/auth/`); its
    /// JWKS is what the services verify against.
    pub signer: std::sync::Arc<omnisaga_auth::Signer>,
    options: StackOptions,
    /// Each service's address: its instance's, or its balancer's.
    ports: BTreeMap<&'static str, u16>,
    /// Each instance's own port.
    instance_ports: BTreeMap<(&'static str, usize), u16>,
    /// The free ports picked for instances not started yet, held open until
    /// each starts, so no other process on the machine takes one meanwhile.
    reserved: std::sync::Mutex<BTreeMap<(&'static str, usize), std::net::TcpListener>>,
    /// The balancers in front of services run as several instances.
    balancers: Vec<balancer::Balancer>,
    /// The PostgreSQL proxy of each instance, when asked for.
    database_proxies: BTreeMap<(&'static str, usize), netfault::Proxy>,
    /// The chat webhook receiver, with `StackOptions::webhook_sink`.
    pub webhook: Option<webhook_sink::WebhookSink>,
}
