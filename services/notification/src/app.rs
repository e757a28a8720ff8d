//! Starting and stopping the notification service.

use std::sync::{Arc, LazyLock};

use anyhow::Result;
use omnisaga_runtime::{
    metrics::{self, Gauges},
    service::{Base, Listeners},
};
use tokio_util::sync::CancellationToken;

use crate::{
    api,
    channel::{Channel, LogChannel},
    config::Config,
    domain::RetryPolicy,
    handlers::SagaEvents,
    store,
    webhook::WebhookChannel,
    workers::Dispatcher,
};

/// Messages dead now, read when scraped.
static DEAD: LazyLock<Gauges> = LazyLock::new(|| {
    metrics::gauge_vec(
        "omnisaga_notifications_dead",
        "Messages dead now: refused NOTIFICATION_MAX_ATTEMPTS times and not retried since",
        &[],
    )
});

pub struct App {
    base: Base,
    listener: Listeners,
    channel: Arc<dyn Channel>,
    retry: RetryPolicy,
    send_timeout: std::time::Duration,
}

impl App {
    pub async fn build(config: Config) -> Result<Self> {
        let trust = config.common.http_trust.clone();
        let base = Base::start(config.common, sqlx::migrate!("./migrations")).await?;
        let listener = base.bind().await?;
        base.projection(Arc::new(crate::projection::SentMessages));
        let channel: Arc<dyn Channel> = match config.webhook {
            Some(hook) => {
                tracing::info!(url = %hook.url, secrets = hook.secrets.len(), "messages go to the webhook");
                Arc::new(WebhookChannel::new(
                    hook.url,
                    hook.secrets,
                    config.send_timeout,
                    &trust,
                )?)
            }
            None => Arc::new(LogChannel),
        };
        Ok(Self {
            base,
            listener,
            channel,
            retry: config.retry,
            send_timeout: config.send_timeout,
        })
    }

    /// Replaces the delivery channel (the log channel by default).
    pub fn with_channel(mut self, channel: Arc<dyn Channel>) -> Self {
        self.channel = channel;
        self
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
        let handler = SagaEvents;
        let mut tasks = vec![self.base.consumer(self.base.subscriptions(), Arc::new(handler))];
        let dispatcher = Dispatcher {
            pool: self.base.pool.clone(),
            waker: self.base.waker.clone(),
            channel: self.channel.clone(),
            notifications_topic: topics.notifications.clone(),
            retry: self.retry,
            send_timeout: self.send_timeout,
        };
        tasks.extend(self.base.workers(1, dispatcher, Dispatcher::run));
        self.base.on_scrape(Arc::new(move |pool| {
            Box::pin(async move {
                if let Ok(n) = store::count_dead(&pool).await {
                    DEAD.with_label_values(&[] as &[&str]).set(n);
                }
            })
        }));
        let router = api::routes(self.base.pool.clone(), self.base.waker.clone());
        self.base.serve_document(api::document());
        self.base.run(self.listener, router, tasks, shutdown).await
    }
}
