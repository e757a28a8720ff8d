//! Starting and stopping the stack: the broker, the trace viewer, the
//! databases and the five services in order, and each service stopped,
//! killed or started again on its own port and database.

use std::{collections::BTreeMap, path::PathBuf, process::Stdio, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use omnisaga_auth::{Scope, Signer};
use tokio::process::Command;

use crate::{
    balancer::Balancer,
    bin_dir, broker, database, instance_label, kafka,
    process::{free_port, open_log, reserve_port, terminate, wait_ready, Stopped},
    repo_root, runtime_role, viewer, Service, Stack, StackOptions, SERVICES,
};

/// An operator's scopes, each granted (`admin` implies none): `admin`,
/// reading what customers, analysts and the order service read, acting
/// on a customer's order (support cancels or retries it), reconciling and
/// importing stock.
/// Not payment tokens: `payment-methods:read` is the payment service's alone.
pub const OPERATOR_SCOPES: [Scope; 7] = [
    Scope::Admin,
    Scope::OrdersRead,
    Scope::OrdersWrite,
    Scope::AnalyticsRead,
    Scope::StockRead,
    Scope::ReconcileRead,
    Scope::StockImport,
];

/// The key of `service`'s admin listener among the stack's ports.
pub fn admin_key(service: &str) -> &'static str {
    match service {
        "order" => "order admin",
        "payment" => "payment admin",
        "warehouse" => "warehouse admin",
        "notification" => "notification admin",
        "analytics" => "analytics admin",
        _ => "unknown admin",
    }
}

/// How long the stack's tokens are valid: a day, longer than any test or demo.
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// An HTTP client that sends `token` with every request (a request may set
/// its own `Authorization` instead).
pub fn client_with(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(value) = format!("Bearer {token}").parse() {
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("an HTTP client builds")
}

impl Stack {
    /// Starts the broker (unless shared), the trace viewer and every service
    /// in [`SERVICES`] order, creating the databases first; returns once
    /// every service answers `/readyz`.
    pub async fn start(options: StackOptions) -> Result<Self> {
        std::fs::create_dir_all(options.dir.join("logs"))?;

        let (kafka, broker) = broker::start(&options).await?;
        let replication = broker.as_ref().map_or(1, |b| b.nodes.len()).max(1);
        let options = if replication > 1 {
            options.set_env("*", "KAFKA_TOPIC_REPLICATION_FACTOR", &replication.to_string())
        } else {
            options
        };
        let kafka_users = kafka::provision(
            &kafka,
            &options.topic_prefix,
            &options.dir.join("kafka-users"),
            replication,
        )
        .await
        .context("the stack's Kafka topics, users and ACLs")?;
        let (ui_port, otlp_port) = if options.fixed_ports {
            (16686, 4317)
        } else {
            (free_port()?, free_port()?)
        };
        let viewer = viewer::spawn(&options, ui_port, otlp_port).await?;
        let signer = Signer::load_or_create(&options.dir.join("auth")).context("the stack's signing key")?;
        let mut stack = Self {
            signer: Arc::new(signer),
            kafka,
            kafka_users,
            traces_url: format!("http://127.0.0.1:{ui_port}"),
            otlp_endpoint: format!("http://127.0.0.1:{otlp_port}"),
            viewer,
            services: Vec::new(),
            broker,
            options,
            ports: BTreeMap::new(),
            instance_ports: BTreeMap::new(),
            reserved: Default::default(),
            balancers: Vec::new(),
            database_proxies: BTreeMap::new(),
            webhook: None,
        };
        if stack.options.webhook_sink {
            stack.webhook = Some(crate::webhook_sink::WebhookSink::start().await?);
        }

        database::ensure_all(&stack.options).await?;

        for (name, default_port) in SERVICES {
            let instances = stack.options.instances_of(name);
            stack.allocate(name, default_port, instances)?;
            // The admin listener (ADMIN_HTTP_ADDR): its port + 100 when fixed.
            stack.allocate(admin_key(name), default_port + 100, instances)?;
        }
        if stack.options.database_proxies {
            for (name, _) in SERVICES {
                for i in 1..=stack.options.instances_of(name) {
                    // A socket directory per instance: the URL keeps
                    // 127.0.0.1:5432, by which the password is looked up.
                    let dir = stack.options.dir.join("pg").join(instance_label(name, i));
                    std::fs::create_dir_all(&dir)?;
                    let proxy = crate::netfault::Proxy::start_unix(&dir.join(".s.PGSQL.5432"), 5432).await?;
                    stack.database_proxies.insert((name, i), proxy);
                }
            }
        }
        for (name, _) in SERVICES {
            for i in 1..=stack.options.instances_of(name) {
                let service = stack.spawn(name, i).await?;
                stack.services.push(service);
            }
        }
        Ok(stack)
    }

    /// Picks the port of `name` (a service, or its admin listener's
    /// [`admin_key`]) and of each of its `instances`, behind a balancer when
    /// there are several.
    fn allocate(&mut self, name: &'static str, default_port: u16, instances: usize) -> Result<()> {
        let (port, held) = if self.options.fixed_ports {
            (default_port, None)
        } else {
            let (port, held) = reserve_port()?;
            (port, Some(held))
        };
        self.ports.insert(name, port);
        if instances == 1 {
            self.instance_ports.insert((name, 1), port);
            if let Some(held) = held {
                self.reserve((name, 1), held);
            }
            return Ok(());
        }
        let mut backends = Vec::new();
        for i in 1..=instances {
            let (port, held) = reserve_port()?;
            self.instance_ports.insert((name, i), port);
            self.reserve((name, i), held);
            backends.push(port);
        }
        let listener = match held {
            Some(held) => held,
            None => std::net::TcpListener::bind(("127.0.0.1", port))
                .with_context(|| format!("Failed to listen on {port} for {name}'s instances"))?,
        };
        let balancer = if self.options.balance_on_readiness {
            Balancer::start_on_readiness(listener, backends)?
        } else {
            Balancer::start(listener, backends)?
        };
        self.balancers.push(balancer);
        Ok(())
    }

    fn reserve(&self, instance: (&'static str, usize), held: std::net::TcpListener) {
        self.reserved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(instance, held);
    }

    /// The prefix of the stack's topics and consumer groups.
    pub fn topic_prefix(&self) -> &str {
        &self.options.topic_prefix
    }

    /// Where service (or `broker`, `trace-viewer`) `name` writes its log.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.options.dir.join(format!("logs/{name}.log"))
    }

    /// Starts instance `instance` of service `name` with the stack's
    /// settings and waits until it is ready.
    async fn spawn(&self, name: &'static str, instance: usize) -> Result<Service> {
        let port = self.instance_ports[&(name, instance)];
        let admin_port = self.instance_ports[&(admin_key(name), instance)];
        let url = format!("http://127.0.0.1:{port}");
        // The service runs as its runtime role and migrates as the
        // database's owner; their passwords come from the password file.
        // Behind a proxy, both reach it on its socket (`?host=`): the URL
        // keeps 127.0.0.1:5432, by which the password file is looked up.
        let db = format!("{}_{name}", self.options.db_prefix);
        let via = if self.database_proxies.contains_key(&(name, instance)) {
            let dir = self.options.dir.join("pg").join(instance_label(name, instance));
            format!("?host={}", dir.display())
        } else {
            String::new()
        };
        let db_url = format!("postgres://{}@127.0.0.1:5432/{db}{via}", runtime_role(name));
        let migration_url = format!("postgres://omnisaga_{name}@127.0.0.1:5432/{db}{via}");
        let label = instance_label(name, instance);
        let log_path = self.options.dir.join(format!("logs/{label}.log"));
        let log = open_log(&log_path)?;
        let log_from = std::fs::metadata(&log_path).map_or(0, |m| m.len());
        let bin = bin_dir()?.join(name);
        let mut cmd = Command::new(&bin);
        cmd.env("DATABASE_URL", db_url)
            .env("DATABASE_MIGRATION_URL", migration_url)
            .env("KAFKA_BROKERS", &self.kafka.brokers)
            .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("ADMIN_HTTP_ADDR", format!("127.0.0.1:{admin_port}"))
            .env("KAFKA_TOPIC_PREFIX", &self.options.topic_prefix)
            .env("CATALOG_SEED_FILE", repo_root()?.join("infra/seed/catalog.json"))
            .env(
                "WAREHOUSE_URL",
                format!("http://127.0.0.1:{}", self.ports[admin_key("warehouse")]),
            )
            .env("AUTH_JWKS_FILE", self.options.dir.join("auth/jwks.json"))
            .env(
                "WAREHOUSE_TOKEN",
                self.token("order-service", &[Scope::StockRead]),
            )
            .env(
                "ORDER_URL",
                format!("http://127.0.0.1:{}", self.ports[admin_key("order")]),
            )
            .env(
                "PAYMENT_ORDER_TOKEN",
                self.token("payment-service", &[Scope::PaymentMethodsRead]),
            )
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &self.otlp_endpoint)
            .env("OTEL_SERVICE_NAME", name)
            .env("OTEL_RESOURCE_ATTRIBUTES", format!("service.instance.id={label}"))
            // Export sizes for 240 orders/s (docs/observability.md, Export).
            .env("OTEL_BSP_SCHEDULE_DELAY", "500")
            .env("OTEL_BSP_MAX_QUEUE_SIZE", "16384")
            .env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2048")
            // One build of everything: every consumer reads version 2.
            .env("WAREHOUSE_ORDER_SHIPPED_VERSION", "2")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        if let Some(users) = &self.kafka_users {
            cmd.envs(users.env(name));
        }
        if let (Some(sink), "notification") = (&self.webhook, name) {
            cmd.env("NOTIFICATION_WEBHOOK_URL", &sink.url)
                .env("NOTIFICATION_WEBHOOK_SECRET", crate::webhook_sink::SECRET);
        }
        // An instance's own settings (its label, "payment-2") come last and win.
        for key in ["*", name, label.as_str()] {
            for (k, v) in self.options.env.get(key).into_iter().flatten() {
                cmd.env(k, v);
            }
        }
        // Its ports, held since the stack picked them, are the instance's now.
        {
            let mut reserved = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
            drop(reserved.remove(&(name, instance)));
            drop(reserved.remove(&(admin_key(name), instance)));
        }
        let mut child = cmd.spawn().with_context(|| {
            format!(
                "Failed to start {} (build it with `cargo build --bins`)",
                bin.display()
            )
        })?;
        wait_ready(&label, &url, &mut child, &log_path, log_from).await?;
        Ok(Service {
            name,
            instance,
            url,
            admin_url: format!("http://127.0.0.1:{admin_port}"),
            child,
        })
    }

    /// Takes every running instance of service `name` out of the stack.
    fn take(&mut self, name: &str) -> Result<Vec<Service>> {
        let (taken, kept) = std::mem::take(&mut self.services)
            .into_iter()
            .partition(|s| s.name == name);
        self.services = kept;
        anyhow::ensure!(!taken.is_empty(), "{name} is not running");
        Ok(taken)
    }

    /// Takes instance `instance` of service `name` out of the stack.
    fn take_instance(&mut self, name: &str, instance: usize) -> Result<Service> {
        let i = self
            .services
            .iter()
            .position(|s| s.name == name && s.instance == instance)
            .with_context(|| format!("{} is not running", instance_label(name, instance)))?;
        Ok(self.services.remove(i))
    }

    /// Every process of the stack by name: the services, the broker and the trace viewer.
    pub fn pids(&self) -> Vec<(String, u32)> {
        let mut out: Vec<(String, u32)> = self
            .services
            .iter()
            .filter_map(|s| Some((s.label(), s.child.id()?)))
            .collect();
        for node in self.broker.iter().flat_map(|b| &b.nodes) {
            out.extend(node.child.id().map(|p| (node.label(), p)));
        }
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

    /// Stops every instance of service `name` gracefully (SIGTERM).
    pub async fn stop_service(&mut self, name: &str) -> Result<()> {
        for mut s in self.take(name)? {
            let label = s.label();
            terminate(&mut s.child, &label).await;
        }
        Ok(())
    }

    /// Kills every instance of service `name` with SIGKILL: no chance to
    /// finish anything.
    pub async fn kill_service(&mut self, name: &str) -> Result<()> {
        for mut s in self.take(name)? {
            s.child.kill().await?;
        }
        Ok(())
    }

    /// Starts every instance of a stopped service again, on the same ports
    /// and database.
    pub async fn start_service(&mut self, name: &'static str) -> Result<()> {
        for i in 1..=self.options.instances_of(name) {
            if !self.running(name).contains(&i) {
                self.start_instance(name, i).await?;
            }
        }
        Ok(())
    }

    /// The instances of service `name` running now.
    pub fn running(&self, name: &str) -> Vec<usize> {
        self.services
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.instance)
            .collect()
    }

    /// How many instances of service `name` the stack runs when whole.
    pub fn instances(&self, name: &str) -> usize {
        self.options.instances_of(name)
    }

    /// Stops instance `instance` of service `name` gracefully (SIGTERM).
    pub async fn stop_instance(&mut self, name: &str, instance: usize) -> Result<()> {
        self.stop_instance_timed(name, instance).await?;
        Ok(())
    }

    /// Stops instance `instance` of service `name` with SIGTERM and says how
    /// long it took to exit and whether it exited by itself, with status 0.
    pub async fn stop_instance_timed(&mut self, name: &str, instance: usize) -> Result<Stopped> {
        let mut s = self.take_instance(name, instance)?;
        let label = s.label();
        Ok(terminate(&mut s.child, &label).await)
    }

    /// Kills instance `instance` of service `name` with SIGKILL.
    pub async fn kill_instance(&mut self, name: &str, instance: usize) -> Result<()> {
        let mut s = self.take_instance(name, instance)?;
        s.child.kill().await?;
        Ok(())
    }

    /// Starts instance `instance` of service `name` again, on its port.
    pub async fn start_instance(&mut self, name: &'static str, instance: usize) -> Result<()> {
        let s = self.spawn(name, instance).await?;
        self.services.push(s);
        Ok(())
    }

    /// The PostgreSQL proxy in front of instance `instance` of `service`,
    /// when the stack has them ([`StackOptions::database_proxies`]).
    pub fn database_proxy(&self, service: &str, instance: usize) -> Option<&crate::netfault::Proxy> {
        self.database_proxies
            .iter()
            .find(|((s, i), _)| *s == service && *i == instance)
            .map(|(_, p)| p)
    }

    /// The service's URL (known while it is stopped too).
    pub fn url(&self, service: &str) -> String {
        self.ports
            .get(service)
            .map(|p| format!("http://127.0.0.1:{p}"))
            .unwrap_or_default()
    }

    /// The URL of the service's admin listener: its admin and internal routes.
    pub fn admin_url(&self, service: &str) -> String {
        SERVICES
            .iter()
            .find(|(name, _)| *name == service)
            .map(|(name, _)| self.url(admin_key(name)))
            .unwrap_or_default()
    }

    /// Instance `instance` (from 1) of the service's own URL, not its balancer's.
    pub fn instance_url(&self, service: &str, instance: usize) -> String {
        self.instance_ports
            .iter()
            .find(|((name, i), _)| *name == service && *i == instance)
            .map(|(_, p)| format!("http://127.0.0.1:{p}"))
            .unwrap_or_default()
    }

    /// A token of the stack's key for `subject` with `scopes`, valid a day.
    pub fn token(&self, subject: &str, scopes: &[Scope]) -> String {
        self.signer.mint(subject, scopes, TOKEN_TTL)
    }

    /// A customer's token: their own orders, read and write.
    pub fn customer_token(&self, customer: &str) -> String {
        self.token(customer, &[Scope::OrdersRead, Scope::OrdersWrite])
    }

    /// An HTTP client sending an operator's token with every request:
    /// [`OPERATOR_SCOPES`] (`admin` implies none).
    pub fn admin_client(&self) -> reqwest::Client {
        client_with(&self.token("e2e-operator", &OPERATOR_SCOPES))
    }

    /// Where the stack's signing key and JWKS are.
    pub fn auth_dir(&self) -> PathBuf {
        self.options.dir.join("auth")
    }

    /// The name of `service`'s database.
    pub fn database(&self, service: &str) -> String {
        format!("{}_{service}", self.options.db_prefix)
    }

    /// Stops a throwaway test stack; when its test `passed`, also drops its
    /// databases and removes its directory. A failed run keeps both, the
    /// logs with them, for a look.
    pub async fn finish(self, passed: bool) -> Result<()> {
        let (prefix, dir) = (self.options.db_prefix.clone(), self.options.dir.clone());
        self.stop().await?;
        if passed {
            Self::drop_databases(&prefix).await?;
            std::fs::remove_dir_all(&dir)?;
        }
        Ok(())
    }

    /// Stops every service with SIGTERM (waiting for its graceful stop), then
    /// the stack's own broker and the trace viewer.
    pub async fn stop(mut self) -> Result<()> {
        for s in self.services.iter_mut().rev() {
            let label = s.label();
            terminate(&mut s.child, &label).await;
        }
        for node in self.broker.iter_mut().flat_map(|b| &mut b.nodes) {
            let label = node.label();
            terminate(&mut node.child, &label).await;
        }
        terminate(&mut self.viewer, "trace viewer").await;
        Ok(())
    }
}
