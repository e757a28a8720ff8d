//! Starting and stopping the payment service.

use std::sync::Arc;

use anyhow::Result;
use omnisaga_runtime::service::{Base, Listeners};
use tokio_util::sync::CancellationToken;

use crate::{api, config::Config, handlers::OrderEvents, provider::Provider, workers::ProviderCalls};

pub struct App {
    base: Base,
    listener: Listeners,
    pub provider: Arc<Provider>,
    callers: usize,
    orders: crate::orders::OrderService,
}

impl App {
    pub async fn build(config: Config) -> Result<Self> {
        let base = Base::start(config.common.clone(), sqlx::migrate!("./migrations")).await?;
        let listener = base.bind().await?;
        base.projection(Arc::new(crate::projection::PaymentView));
        Ok(Self {
            provider: Arc::new(Provider::new(config.provider, base.pool.clone())),
            base,
            listener,
            callers: config.provider_callers,
            orders: config.orders.clone(),
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
        let handler = OrderEvents {
            payments_topic: topics.payments.clone(),
        };
        let mut tasks = vec![self.base.consumer(self.base.subscriptions(), Arc::new(handler))];
        let callers = ProviderCalls {
            pool: self.base.pool.clone(),
            waker: self.base.waker.clone(),
            provider: self.provider.clone(),
            payments_topic: topics.payments.clone(),
            orders: self.orders.clone(),
        };
        tasks.extend(self.base.workers(self.callers, callers, ProviderCalls::run));
        let queued = omnisaga_runtime::metrics::gauge_vec(
            "omnisaga_provider_calls_queued",
            "Calls to the payment provider queued and not yet made",
            &[],
        );
        self.base.on_scrape(Arc::new(move |pool| {
            let gauge = queued.clone();
            Box::pin(async move {
                if let Ok(mut conn) = pool.acquire().await {
                    if let Ok(n) = crate::store::calls_queued(&mut conn).await {
                        gauge.with_label_values::<&str>(&[]).set(n);
                    }
                }
            })
        }));
        let router = api::routes(self.base.pool.clone(), self.provider.clone());
        self.base.serve_document(api::document());
        self.base.run(self.listener, router, tasks, shutdown).await
    }
}
