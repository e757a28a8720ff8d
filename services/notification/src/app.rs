//! Starting and stopping the notification service.

use std::sync::Arc;

use anyhow::Result;
use omnisaga_runtime::service::{Base, Task};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    api,
    channel::{Channel, LogChannel},
    config::Config,
    dispatcher::Dispatcher,
    handlers::SagaEvents,
};

pub struct App {
    base: Base,
    listener: TcpListener,
    channel: Arc<dyn Channel>,
}

impl App {
    pub async fn build(config: Config) -> Result<Self> {
        let base = Base::start(config.common, sqlx::migrate!("./migrations")).await?;
        let listener = base.bind().await?;
        Ok(Self {
            base,
            listener,
            channel: Arc::new(LogChannel),
        })
    }

    /// Replaces the delivery channel (the log channel by default).
    pub fn with_channel(mut self, channel: Arc<dyn Channel>) -> Self {
        self.channel = channel;
        self
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<()> {
        let t = &self.base.topics;
        let consumer = self
            .base
            .consumer(self.base.subscriptions(), Arc::new(SagaEvents));
        let dispatcher = Dispatcher {
            pool: self.base.pool.clone(),
            waker: self.base.waker.clone(),
            channel: self.channel.clone(),
            notifications_topic: t.notifications.clone(),
        };
        let dispatch: Task = Box::new(move |token| Box::pin(dispatcher.run(token)));
        let router = api::routes(self.base.pool.clone());
        self.base
            .run(self.listener, router, vec![consumer, dispatch], shutdown)
            .await
    }
}
