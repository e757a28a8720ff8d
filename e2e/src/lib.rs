//! Starts the whole omnisaga stack as real processes on this machine: an
//! Apache Kafka node (or a broker already running), one database and role per
//! service in the local PostgreSQL, and the five service binaries, each
//! waited for until `/readyz` answers.
//! `make run` (the `omnisaga-stack` binary), the e2e tests and the load
//! generator all start the stack through [`Stack::start`].

pub mod bench;
pub mod client;
pub mod logs;
pub mod traces;

use std::{
    collections::BTreeMap,
    net::TcpListener,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{bail, Context, Result};
use sqlx::{Connection, PgConnection};
use tokio::process::{Child, Command};

/// The services in start order, with their default HTTP ports.
pub const SERVICES: [(&str, u16); 5] = [
    ("order", 8080),
    ("payment", 8081),
    ("warehouse", 8082),
    ("notification", 8083),
    ("analytics", 8084),
];

/// Where the stack's broker comes from.
#[derive(Debug, Clone)]
pub enum Broker {
    /// A Kafka node of the stack's own (`infra/kafka/broker.sh`), its data in
    /// the stack's directory under `broker/`: it survives a restart, and the
    /// stack can kill and restart it.
    Own,
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
}

impl StackOptions {
    pub fn set_env(mut self, service: &str, key: &str, value: &str) -> Self {
        self.env
            .entry(service.to_owned())
            .or_default()
            .push((key.to_owned(), value.to_owned()));
        self
    }
}

pub struct Service {
    pub name: &'static str,
    pub url: String,
    child: Child,
}

pub struct Stack {
    pub brokers: String,
    /// The trace viewer: Jaeger UI and query API.
    pub traces_url: String,
    otlp_endpoint: String,
    viewer: Child,
    pub services: Vec<Service>,
    /// The stack's own broker and its controller port; `None` when shared.
    broker: Option<(Child, u16)>,
    options: StackOptions,
    ports: BTreeMap<&'static str, u16>,
}

/// The directory holding this build's binaries: `OMNISAGA_BIN_DIR` (make
/// sets it: test binaries live in cargo's shared build directory, apart from
/// the clone's binaries), else the launcher's own directory, or the parent
/// of `deps/` for a test binary of a plain `cargo test`.
pub fn bin_dir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("OMNISAGA_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("executable has no directory")?;
    Ok(if dir.ends_with("deps") {
        dir.parent().context("deps has no parent")?.to_path_buf()
    } else {
        dir.to_path_buf()
    })
}

/// The clone the stack runs from: `OMNISAGA_ROOT`, else the nearest folder
/// at or above the working directory that holds `infra/kafka/broker.sh`. Never
/// the folder the binary was compiled in, so clones sharing a build cache
/// each use their own files.
pub fn repo_root() -> Result<PathBuf> {
    if let Ok(root) = std::env::var("OMNISAGA_ROOT") {
        return Ok(PathBuf::from(root));
    }
    let cwd = std::env::current_dir().context("Failed to read the working directory")?;
    find_root(&cwd).with_context(|| {
        format!(
            "{} is not inside an omnisaga clone (no infra/kafka/broker.sh above it): \
             run from the clone, or set OMNISAGA_ROOT",
            cwd.display()
        )
    })
}

fn find_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join("infra/kafka/broker.sh").is_file())
        .map(Path::to_path_buf)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The PostgreSQL server (admin connection, no database), `OMNISAGA_PG` or the local one.
pub fn pg_server() -> String {
    std::env::var("OMNISAGA_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Creates the role and the database of `service` (owned by the role, closed
/// to every other role), recreating the database when `fresh`.
async fn ensure_database(admin: &mut PgConnection, service: &str, db: &str, fresh: bool) -> Result<()> {
    let role = format!("omnisaga_{service}");
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(&role)
        .fetch_one(&mut *admin)
        .await?;
    if !exists {
        sqlx::query(&format!("CREATE ROLE \"{role}\" LOGIN"))
            .execute(&mut *admin)
            .await?;
    }
    if fresh {
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
            .execute(&mut *admin)
            .await?;
    }
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(db)
        .fetch_one(&mut *admin)
        .await?;
    if !exists {
        sqlx::query(&format!("CREATE DATABASE \"{db}\" OWNER \"{role}\""))
            .execute(&mut *admin)
            .await?;
        sqlx::query(&format!("REVOKE ALL ON DATABASE \"{db}\" FROM PUBLIC"))
            .execute(&mut *admin)
            .await?;
    }
    Ok(())
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

async fn wait_tcp(addr: &str, child: &mut Child, log: &Path, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("exited with {status}; last log lines:\n{}", log_tail(log));
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{addr} did not accept connections within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_ready(name: &str, url: &str, child: &mut Child, log: &Path) -> Result<()> {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "{name} exited with {status} before it was ready; last log lines:\n{}",
                log_tail(log)
            );
        }
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{name} was not ready within 60 s (log: {})", log.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts the trace viewer and waits until it accepts connections.
async fn spawn_viewer(options: &StackOptions, ui_port: u16, otlp_port: u16) -> Result<Child> {
    let log_path = options.dir.join("logs/trace-viewer.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let mut viewer = Command::new(bin_dir()?.join("trace-viewer"))
        .env("TRACES_HTTP_ADDR", format!("127.0.0.1:{ui_port}"))
        .env("TRACES_OTLP_GRPC_ADDR", format!("127.0.0.1:{otlp_port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("Failed to start the trace viewer (build it with `cargo build --bins`)")?;
    for port in [ui_port, otlp_port] {
        wait_tcp(
            &format!("127.0.0.1:{port}"),
            &mut viewer,
            &log_path,
            Duration::from_secs(30),
        )
        .await
        .context("the trace viewer did not start")?;
    }
    Ok(viewer)
}

/// Starts the stack's own Kafka node on `port` (controller on
/// `controller_port`) and waits until it accepts connections.
async fn spawn_broker(options: &StackOptions, port: u16, controller_port: u16) -> Result<Child> {
    let log_path = options.dir.join("logs/broker.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
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

    /// Kills the trace viewer: services go on, their span exports fail.
    pub async fn kill_trace_viewer(&mut self) -> Result<()> {
        self.viewer.kill().await?;
        Ok(())
    }

    /// Starts the stack's own broker again on the same ports and data.
    pub async fn restart_broker(&mut self) -> Result<()> {
        let (_, controller_port) = self.broker.as_ref().context("the broker is shared")?;
        let controller_port = *controller_port;
        let port = self
            .brokers
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("broker address has no port")?;
        let child = spawn_broker(&self.options, port, controller_port).await?;
        self.broker = Some((child, controller_port));
        Ok(())
    }

    pub async fn start(options: StackOptions) -> Result<Self> {
        std::fs::create_dir_all(options.dir.join("logs"))?;

        let (brokers, broker) = match &options.broker {
            Broker::Shared(brokers) => (brokers.clone(), None),
            Broker::Own => {
                let (port, controller_port) = if options.fixed_ports {
                    (9092, 9093)
                } else {
                    (free_port()?, free_port()?)
                };
                let child = spawn_broker(&options, port, controller_port).await?;
                (format!("127.0.0.1:{port}"), Some((child, controller_port)))
            }
        };
        let (ui_port, otlp_port) = if options.fixed_ports {
            (16686, 4317)
        } else {
            (free_port()?, free_port()?)
        };
        let viewer = spawn_viewer(&options, ui_port, otlp_port).await?;
        let mut stack = Self {
            brokers,
            traces_url: format!("http://127.0.0.1:{ui_port}"),
            otlp_endpoint: format!("http://127.0.0.1:{otlp_port}"),
            viewer,
            services: Vec::new(),
            broker,
            options,
            ports: BTreeMap::new(),
        };

        let mut admin = PgConnection::connect(&format!("{}/postgres", pg_server()))
            .await
            .context("Failed to connect to PostgreSQL on 127.0.0.1:5432 (make starts it)")?;
        for (name, _) in SERVICES {
            let db = format!("{}_{name}", stack.options.db_prefix);
            ensure_database(&mut admin, name, &db, stack.options.fresh_databases).await?;
        }
        admin.close().await?;

        for (name, default_port) in SERVICES {
            let port = if stack.options.fixed_ports {
                default_port
            } else {
                free_port()?
            };
            stack.ports.insert(name, port);
        }
        for (name, _) in SERVICES {
            let service = stack.spawn(name).await?;
            stack.services.push(service);
        }
        Ok(stack)
    }

    /// The prefix of the stack's topics and consumer groups.
    pub fn topic_prefix(&self) -> &str {
        &self.options.topic_prefix
    }

    /// Where service (or `broker`, `trace-viewer`) `name` writes its log.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.options.dir.join(format!("logs/{name}.log"))
    }

    /// Starts service `name` with the stack's settings and waits until it is ready.
    async fn spawn(&self, name: &'static str) -> Result<Service> {
        let port = self.ports[name];
        let url = format!("http://127.0.0.1:{port}");
        let db_url = format!(
            "postgres://omnisaga_{name}@127.0.0.1:5432/{}_{name}",
            self.options.db_prefix
        );
        let log_path = self.options.dir.join(format!("logs/{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let bin = bin_dir()?.join(name);
        let mut cmd = Command::new(&bin);
        cmd.env("DATABASE_URL", db_url)
            .env("KAFKA_BROKERS", &self.brokers)
            .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("KAFKA_TOPIC_PREFIX", &self.options.topic_prefix)
            .env("CATALOG_SEED_FILE", repo_root()?.join("infra/seed/catalog.json"))
            .env(
                "WAREHOUSE_URL",
                format!("http://127.0.0.1:{}", self.ports["warehouse"]),
            )
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &self.otlp_endpoint)
            .env("OTEL_SERVICE_NAME", name)
            .env("OTEL_BSP_SCHEDULE_DELAY", "500")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        for key in ["*", name] {
            for (k, v) in self.options.env.get(key).into_iter().flatten() {
                cmd.env(k, v);
            }
        }
        let mut child = cmd.spawn().with_context(|| {
            format!(
                "Failed to start {} (build it with `cargo build --bins`)",
                bin.display()
            )
        })?;
        wait_ready(name, &url, &mut child, &log_path).await?;
        Ok(Service { name, url, child })
    }

    fn take(&mut self, name: &str) -> Result<Service> {
        let i = self
            .services
            .iter()
            .position(|s| s.name == name)
            .with_context(|| format!("{name} is not running"))?;
        Ok(self.services.remove(i))
    }

    /// Every process of the stack by name: the services, the broker and the trace viewer.
    pub fn pids(&self) -> Vec<(String, u32)> {
        let mut out: Vec<(String, u32)> = self
            .services
            .iter()
            .filter_map(|s| Some((s.name.to_owned(), s.child.id()?)))
            .collect();
        out.extend(
            self.broker
                .as_ref()
                .and_then(|(b, _)| b.id())
                .map(|p| ("broker".to_owned(), p)),
        );
        out.extend(self.viewer.id().map(|p| ("trace-viewer".to_owned(), p)));
        out
    }

    /// Sets an environment variable for the next start of `service`.
    pub fn set_service_env(&mut self, service: &str, key: &str, value: &str) {
        self.options
            .env
            .entry(service.to_owned())
            .or_default()
            .push((key.to_owned(), value.to_owned()));
    }

    /// Stops service `name` gracefully (SIGTERM).
    pub async fn stop_service(&mut self, name: &str) -> Result<()> {
        let mut s = self.take(name)?;
        terminate(&mut s.child, s.name).await;
        Ok(())
    }

    /// Kills service `name` with SIGKILL: no chance to finish anything.
    pub async fn kill_service(&mut self, name: &str) -> Result<()> {
        let mut s = self.take(name)?;
        s.child.kill().await?;
        Ok(())
    }

    /// Starts a stopped service again, on the same port and database.
    pub async fn start_service(&mut self, name: &'static str) -> Result<()> {
        let s = self.spawn(name).await?;
        self.services.push(s);
        Ok(())
    }

    /// The service's URL (known while it is stopped too).
    pub fn url(&self, service: &str) -> String {
        self.ports
            .get(service)
            .map(|p| format!("http://127.0.0.1:{p}"))
            .unwrap_or_default()
    }

    /// Stops every service with SIGTERM (waiting for its graceful stop), then
    /// the stack's own broker.
    pub async fn stop(mut self) -> Result<()> {
        for s in self.services.iter_mut().rev() {
            terminate(&mut s.child, s.name).await;
        }
        if let Some((broker, _)) = self.broker.as_mut() {
            terminate(broker, "broker").await;
        }
        terminate(&mut self.viewer, "trace viewer").await;
        Ok(())
    }

    /// Drops the stack's databases (for throwaway test stacks).
    pub async fn drop_databases(prefix: &str) -> Result<()> {
        let mut admin = PgConnection::connect(&format!("{}/postgres", pg_server())).await?;
        for (name, _) in SERVICES {
            sqlx::query(&format!(
                "DROP DATABASE IF EXISTS \"{prefix}_{name}\" WITH (FORCE)"
            ))
            .execute(&mut admin)
            .await?;
        }
        Ok(())
    }
}

async fn terminate(child: &mut Child, name: &str) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .is_err()
        {
            eprintln!("{name} did not stop within 20 s, killing it");
            let _ = child.kill().await;
        }
    }
}
