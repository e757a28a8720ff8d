//! What every service does at start and stop: connect and migrate its
//! database, create the topics, start the outbox relay, its consumers and
//! its HTTP server, and stop them all on one token.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, Result};
use axum::{middleware, Router};
use futures::future::BoxFuture;
use sqlx::{migrate::Migrator, PgPool};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use omnisaga_auth::Scope;

use crate::{
    base::{db, metrics},
    boot::config::CommonConfig,
    edge::{
        audit, auth,
        cached::{self, Cache},
        consumers, context, dead_letters, health, http, limits, rebuilds,
        routes::{Listener, Routes},
        scrape, server,
    },
    es::projection::Projection,
    messaging::{
        consumer::{dead_letter::Replay, Applier, Consumer, Handler},
        kafka::{self, Topics},
        progress,
        relay::Relay,
    },
    work::OutboxWaker,
};

/// A background task of a service, started with the shutdown token.
pub type Task = Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, Result<()>> + Send>;

/// The parts every service has once started.
#[derive(Clone)]
pub struct Base {
    pub config: CommonConfig,
    pub pool: PgPool,
    pub topics: Topics,
    pub waker: OutboxWaker,
    replayers: Arc<std::sync::Mutex<Vec<Arc<dyn Replay>>>>,
    projections: Arc<std::sync::Mutex<Vec<Arc<dyn Projection>>>>,
    consumers: Arc<std::sync::Mutex<Vec<progress::Registered>>>,
    refreshers: Arc<std::sync::Mutex<Vec<metrics::Refresh>>>,
    open_paths: Arc<std::sync::Mutex<Vec<&'static str>>>,
    /// The service's OpenAPI document, served at `/v1/openapi.json` and `/docs`.
    document: Arc<std::sync::Mutex<Option<serde_json::Value>>>,
}

impl Base {
    /// Connects, migrates (runtime tables, then `migrator`) and creates the topics.
    pub async fn start(config: CommonConfig, migrator: Migrator) -> Result<Self> {
        Self::start_with(config, migrator, |_| Box::pin(async { Ok(()) })).await
    }

    /// [`Base::start`], running `as_owner` after the migrations as the
    /// database's owner ([`db::prepare`]), e.g. to grant another role reads.
    pub async fn start_with<F>(config: CommonConfig, migrator: Migrator, as_owner: F) -> Result<Self>
    where
        F: for<'a> FnOnce(&'a PgPool) -> BoxFuture<'a, Result<()>>,
    {
        crate::base::failpoint::arm_from_env()?;
        let pool = db::prepare(&config.database(), migrator, as_owner).await?;
        kafka::ensure_service_topics(&config.kafka, config.service).await?;
        Ok(Self {
            topics: config.kafka.topics(),
            config,
            pool,
            waker: OutboxWaker::default(),
            replayers: Default::default(),
            projections: Default::default(),
            consumers: Default::default(),
            refreshers: Default::default(),
            open_paths: Arc::new(std::sync::Mutex::new(auth::OPEN_PATHS.to_vec())),
            document: Default::default(),
        })
    }

    /// The topics the catalog lists this service as a consumer of
    /// (`schemas/topics.json`): what its consumer subscribes to.
    pub fn subscriptions(&self) -> Vec<String> {
        self.topics.consumed_by(self.config.service)
    }

    /// The consumer task for `topics`, in consumer group `<prefix><service>`
    /// (plus `KAFKA_GROUP_SUFFIX`, to replay a topic under a new group). Its
    /// inbox and dead letters are named after the service, so a replay under
    /// another group still applies each event once.
    pub fn consumer<H: Handler>(&self, topics: Vec<String>, handler: Arc<H>) -> Task {
        let applier = Arc::new(Applier {
            name: self.config.service.to_owned(),
            pool: self.pool.clone(),
            handler,
            waker: self.waker.clone(),
            max_attempts: 5,
        });
        self.replayers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(applier.clone());
        let group = format!(
            "{}{}{}",
            self.config.kafka.topic_prefix, self.config.service, self.config.group_suffix
        );
        let slot = progress::Slot::default();
        self.consumers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(progress::Registered {
                name: self.config.service.to_owned(),
                group: group.clone(),
                slot: slot.clone(),
            });
        let consumer = Consumer {
            group,
            topics,
            kafka: self.config.kafka.clone(),
            applier,
            slot,
            batch_max: self.config.consumer_batch_max,
        };
        Box::new(move |token| Box::pin(consumer.run(token)))
    }

    /// `count` tasks, each running a copy of `worker` with `run` (its
    /// durable-work loop, `crate::work::run`, woken as `run` says) until
    /// the shutdown token: how every service starts its workers.
    pub fn workers<W, F>(&self, count: usize, worker: W, run: fn(W, CancellationToken) -> F) -> Vec<Task>
    where
        W: Clone + Send + 'static,
        F: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        (0..count)
            .map(|_| {
                let worker = worker.clone();
                let task: Task = Box::new(move |token| Box::pin(run(worker, token)));
                task
            })
            .collect()
    }

    /// Registers a read model the service keeps from its own events, so
    /// `/v1/admin/rebuilds` can make it again from them
    /// ([`crate::es::rebuild`]).
    pub fn projection(&self, projection: Arc<dyn Projection>) {
        self.projections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(projection);
    }

    /// Adds a scrape-time refresh of the service's own gauges.
    pub fn on_scrape(&self, refresh: metrics::Refresh) {
        self.refreshers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(refresh);
    }

    /// Binds the HTTP listeners, public and admin (port 0 in tests picks a
    /// free port).
    pub async fn bind(&self) -> Result<Listeners> {
        let bind = |addr| async move {
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("Failed to bind {addr}"))
        };
        Ok(Listeners {
            public: bind(self.config.http_addr).await?,
            admin: bind(self.config.admin_http_addr).await?,
        })
    }

    /// Serves `document` (the service's, `crate::edge::openapi::document`) at
    /// `/v1/openapi.json` and as a page at `/docs`, both without a token.
    pub fn serve_document(&self, document: serde_json::Value) {
        for path in crate::edge::openapi::OPEN_PATHS {
            self.open_path(path);
        }
        *self.document.lock().unwrap_or_else(|e| e.into_inner()) = Some(document);
    }

    /// Serves `path` without a token (besides the probes and the metrics).
    /// Only for what shows nothing about any one customer or order.
    pub fn open_path(&self, path: &'static str) {
        self.open_paths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path);
    }

    /// Runs the relay, `tasks` and the HTTP servers with `api` until `shutdown`
    /// (or until one of them fails, which stops the others): the public
    /// routes, the documents, the probes and the metrics on the public
    /// listener; the admin and internal routes (the runtime's and `api`'s)
    /// on the admin one, with the probes.
    pub async fn run(
        self,
        listeners: Listeners,
        api: Routes,
        tasks: Vec<Task>,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let producer = kafka::producer(&self.config.kafka, self.config.service)?;
        let relay = Relay {
            pool: self.pool.clone(),
            producer: producer.clone(),
            waker: self.waker.clone(),
            poll: self.config.outbox_poll,
            batch: 500,
            lock_key: lock_key(self.config.service),
            inbox_retention: self.config.inbox_retention,
        };
        let readiness =
            health::Readiness::new(self.pool.clone(), &self.config.kafka)?.with_producer(producer.clone());
        let replayers = self.replayers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let consumers = self.consumers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut refreshers = self.refreshers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        refreshers.push(progress::lag_refresh(consumers.clone()));
        let audit_log = audit::Audit::new(self.pool.clone());
        let projections = self.projections.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let operators = dead_letters::routes(self.pool.clone(), replayers)
            .merge(consumers::routes(consumers))
            .merge(rebuilds::routes(self.pool.clone(), projections))
            .merge(audit::routes(self.pool.clone()))
            .route_layer(middleware::from_fn_with_state(Scope::Admin, auth::require_scope));
        let api = api.checked(Listener::Admin, operators);
        let documents = match self.document.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(document) => crate::edge::openapi::routes(document),
            None => Router::new(),
        };
        let public = api
            .public
            .merge(documents)
            // Open to anyone and each a database query: one answer a second.
            .merge(
                health::health_routes(readiness.clone())
                    .route_layer(middleware::from_fn_with_state(Cache::new(), cached::cached)),
            )
            .merge(
                scrape::routes(self.pool.clone(), refreshers)
                    .route_layer(middleware::from_fn_with_state(Cache::new(), cached::cached)),
            );
        let admin = api.admin.merge(
            health::health_routes(readiness)
                .route_layer(middleware::from_fn_with_state(Cache::new(), cached::cached)),
        );
        // One rate limit and one bound on requests at once for both.
        let guard = limits::Guard::new(self.config.limits, self.pool.clone());
        let public = self.layered(public, guard.clone(), audit_log.clone());
        let admin = self.layered(admin, guard, audit_log);

        // Work stops first; the relay stops last so it drains what they wrote.
        let work = shutdown.child_token();
        let relay_token = CancellationToken::new();
        let mut set = tokio::task::JoinSet::new();
        let tls = self
            .config
            .tls
            .as_ref()
            .map(|files| files.acceptor())
            .transpose()?;
        set.spawn(server::serve(
            listeners.public,
            tls.clone(),
            public,
            self.config.server,
            work.clone(),
        ));
        set.spawn(server::serve(
            listeners.admin,
            tls,
            admin,
            self.config.server,
            work.clone(),
        ));
        for task in tasks {
            set.spawn(task(work.clone()));
        }
        let relay_handle = tokio::spawn(relay.run(relay_token.clone()));
        tracing::info!(service = self.config.service, "service started");

        let grace = self.config.shutdown_grace;
        let (result, deadline) = crate::boot::shutdown::run_tasks(set, &work, grace).await;
        relay_token.cancel();
        if crate::boot::shutdown::drain_relay(relay_handle, deadline, grace).await? {
            // What is still queued in the producer gets the rest of the grace period.
            let left = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .max(Duration::from_millis(100));
            let flushed = tokio::task::spawn_blocking(move || producer.flush(left)).await?;
            if let Err(e) = flushed {
                tracing::warn!(error = %e, "producer flush incomplete");
            }
        }
        self.pool.close().await;
        tracing::info!(service = self.config.service, "service stopped");
        result
    }

    /// `router` behind the layers every listener has: the not-found
    /// fallback, the audit log, the limits, authentication, the request
    /// context.
    fn layered(&self, router: Router, guard: Arc<limits::Guard>, audit_log: Arc<audit::Audit>) -> Router {
        router
            .fallback(http::not_found)
            .layer(http::catch_panics())
            // Matched routes only, inside the limits: what the router or a
            // limit refused (404, 429, 503) never reaches the log.
            .route_layer(middleware::from_fn_with_state(audit_log.clone(), audit::record))
            .layer(middleware::from_fn_with_state(guard, limits::limit))
            .layer(middleware::from_fn_with_state(
                Arc::new(auth::Gate {
                    verifier: self.config.auth.verifier.clone(),
                    open: self.open_paths.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                    audit: Some(audit_log),
                }),
                auth::authenticate,
            ))
            .layer(middleware::from_fn_with_state(
                context::TraceTrust {
                    verifier: Some(self.config.auth.verifier.clone()),
                },
                context::request_context,
            ))
    }
}

/// A service's two HTTP listeners ([`Base::bind`]).
pub struct Listeners {
    /// `HTTP_ADDR`: the public routes.
    pub public: TcpListener,
    /// `ADMIN_HTTP_ADDR`: the internal and admin routes.
    pub admin: TcpListener,
}

impl Listeners {
    /// The public listener's port.
    pub fn port(&self) -> u16 {
        self.public.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The admin listener's port.
    pub fn admin_port(&self) -> u16 {
        self.admin.local_addr().map(|a| a.port()).unwrap_or(0)
    }
}

/// A stable advisory lock key per service name.
fn lock_key(service: &str) -> i64 {
    // FNV-1a: stable across builds, unlike the std hasher.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in service.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h as i64
}
