//! Starting and stopping the order service.

use std::sync::Arc;

use anyhow::{Context, Result};
use omnisaga_runtime::service::{Base, Listeners};
use tokio_util::sync::CancellationToken;

use crate::{api, application::Orders, config::Config, handlers::SagaEvents, store, workers::Deadlines};

pub struct App {
    base: Base,
    listener: Listeners,
    config: Arc<Config>,
}

impl App {
    /// Connects, migrates, seeds the catalog when configured and binds the listener.
    pub async fn build(config: Config) -> Result<Self> {
        let base = Base::start(config.common.clone(), sqlx::migrate!("./migrations")).await?;
        if let Some(path) = &config.seed_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("Failed to read {}", path.display()))?;
            let items: Vec<store::CatalogItem> = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a valid catalog", path.display()))?;
            store::upsert_catalog(&base.pool, &items).await?;
        }
        let listener = base.bind().await?;
        Ok(Self {
            base,
            listener,
            config: Arc::new(config),
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.port()
    }

    /// The admin listener's port (the internal and admin routes).
    pub fn admin_port(&self) -> u16 {
        self.listener.admin_port()
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<()> {
        let orders = Orders {
            pool: self.base.pool.clone(),
            waker: self.base.waker.clone(),
            topic: self.base.topics.orders.clone(),
            payment_deadline: self.config.payment_deadline,
        };
        self.base.projection(Arc::new(crate::projection::OrderView {
            payment_deadline: self.config.payment_deadline,
        }));
        let handler = SagaEvents {
            orders: orders.clone(),
        };
        let mut tasks = vec![self.base.consumer(self.base.subscriptions(), Arc::new(handler))];
        let deadlines = Deadlines {
            orders: orders.clone(),
            delay_notice: self.config.payment_delay_notice,
            stages: self.config.stage_deadlines,
            tick: self.config.deadline_tick,
        };
        tasks.extend(self.base.workers(1, deadlines, Deadlines::run));
        let feed = api::events::feed::Feed::new(self.config.live);
        let (poller, pool) = (feed.clone(), self.base.pool.clone());
        tasks.push(Box::new(move |stop| Box::pin(poller.poll(pool, stop))));
        let state = api::ApiState {
            pool: self.base.pool.clone(),
            waker: self.base.waker.clone(),
            orders,
            feed,
            config: self.config.clone(),
            http: self
                .config
                .common
                .http_trust
                .builder()
                .timeout(std::time::Duration::from_secs(1))
                .build()
                .context("Failed to build the HTTP client for the warehouse")?,
        };
        let past_deadline = omnisaga_runtime::metrics::gauge_vec(
            "omnisaga_sagas_past_deadline",
            "Orders still awaiting payment after their payment deadline (the scheduler is stuck)",
            &[],
        );
        let stuck = omnisaga_runtime::metrics::gauge_vec(
            "omnisaga_sagas_stuck",
            "Orders PLACED, PAID or READY_FOR_SHIPMENT unchanged for longer than ORDER_STUCK_AFTER_MS, by status (the service they wait on is down or losing work)",
            &["status"],
        );
        let escalated = omnisaga_runtime::metrics::gauge_vec(
            "omnisaga_sagas_escalated",
            "Orders escalated at their stage's deadline (ORDER_PLACED_DEADLINE_MS, ORDER_PAID_DEADLINE_MS, ORDER_READY_FOR_SHIPMENT_DEADLINE_MS) and still waiting in it, by status",
            &["status"],
        );
        let stuck_after = self.config.stuck_after;
        self.base.on_scrape(Arc::new(move |pool| {
            let (gauge, stuck, escalated) = (past_deadline.clone(), stuck.clone(), escalated.clone());
            Box::pin(async move {
                if let Ok(counts) = store::escalations::count(&pool).await {
                    for (status, n) in counts {
                        escalated.with_label_values(&[status.as_str()]).set(n);
                    }
                }
                if let Ok(n) = store::count_past_payment_deadline(&pool).await {
                    gauge.with_label_values::<&str>(&[]).set(n);
                }
                if let Ok(counts) = store::count_stuck(&pool, stuck_after).await {
                    for (status, n) in counts {
                        stuck.with_label_values(&[status.as_str()]).set(n);
                    }
                }
            })
        }));
        let router = api::routes(state);
        self.base.serve_document(api::document());
        self.base.run(self.listener, router, tasks, shutdown).await
    }
}
