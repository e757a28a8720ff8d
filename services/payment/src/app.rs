//! Starting and stopping the payment service.

use std::sync::Arc;

use anyhow::Result;
use omnisaga_runtime::service::Base;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{api, config::Config, handlers::OrderEvents, provider::Provider};

pub struct App {
    base: Base,
    listener: TcpListener,
    pub provider: Arc<Provider>,
}

impl App {
    pub async fn build(config: Config) -> Result<Self> {
        let base = Base::start(config.common.clone(), sqlx::migrate!("./migrations")).await?;
        let listener = base.bind().await?;
        Ok(Self {
            base,
            listener,
            provider: Arc::new(Provider::new(config.provider)),
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<()> {
        let handler = OrderEvents {
            provider: self.provider.clone(),
            payments_topic: self.base.topics.payments.clone(),
        };
        let consumer = self.base.consumer(self.base.subscriptions(), Arc::new(handler));
        let router = api::routes(self.base.pool.clone(), self.provider.clone());
        self.base
            .run(self.listener, router, vec![consumer], shutdown)
            .await
    }
}
