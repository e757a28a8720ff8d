//! Starting and stopping the warehouse service.

use std::sync::Arc;

use anyhow::{Context, Result};
use omnisaga_runtime::service::{Base, Listeners};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::{
    api,
    config::Config,
    handlers::SagaEvents,
    projection::{PickBacklog, StockLevels},
    store,
    workers::Pickers,
};

pub struct App {
    base: Base,
    listener: Listeners,
    config: Config,
}

#[derive(Deserialize)]
struct SeedItem {
    sku: String,
    stock: i64,
}

impl App {
    pub async fn build(config: Config) -> Result<Self> {
        let base = Base::start(config.common.clone(), sqlx::migrate!("./migrations")).await?;
        if let Some(path) = &config.seed_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("Failed to read {}", path.display()))?;
            let items: Vec<SeedItem> = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a valid catalog", path.display()))?;
            let stock: Vec<(String, i64)> = items.into_iter().map(|i| (i.sku, i.stock)).collect();
            store::seed_stock(&base.pool, &stock).await?;
        }
        let opened = store::open_balances(&base.pool).await?;
        if !opened.is_empty() {
            tracing::info!(
                skus = opened.len(),
                "opening balances recorded for stock counted before goods received were events"
            );
        }
        base.projection(Arc::new(StockLevels));
        base.projection(Arc::new(PickBacklog));
        let listener = base.bind().await?;
        Ok(Self {
            base,
            listener,
            config,
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
        let topics = &self.base.topics;
        let handler = SagaEvents {
            warehouse_topic: topics.warehouse.clone(),
        };
        let mut tasks = vec![self.base.consumer(self.base.subscriptions(), Arc::new(handler))];
        let pickers = Pickers {
            pool: self.base.pool.clone(),
            waker: self.base.waker.clone(),
            warehouse_topic: topics.warehouse.clone(),
            pick: self.config.pick,
            pack: self.config.pack,
            ship: self.config.ship,
            order_shipped_version: self.config.order_shipped_version,
            packed: Default::default(),
        };
        tasks.extend(self.base.workers(self.config.pickers, pickers, Pickers::run));
        let pick_backlog = omnisaga_runtime::metrics::gauge_vec(
            "omnisaga_pick_backlog",
            "Pick tasks not yet shipped, per status",
            &["status"],
        );
        self.base.on_scrape(Arc::new(move |pool| {
            let gauge = pick_backlog.clone();
            Box::pin(async move {
                if let Ok(counts) = crate::store::backlog(&pool).await {
                    for (status, n) in counts {
                        gauge.with_label_values(&[status.as_str()]).set(n);
                    }
                }
            })
        }));
        let router = api::routes(self.base.pool.clone(), self.base.topics.warehouse.clone());
        self.base.serve_document(api::document());
        self.base.run(self.listener, router, tasks, shutdown).await
    }
}
