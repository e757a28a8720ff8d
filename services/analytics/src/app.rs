//! Starting and stopping the analytics service.

use std::sync::Arc;

use anyhow::Result;
use omnisaga_runtime::service::{Base, Listeners};
use tokio_util::sync::CancellationToken;

use crate::{api, config::Config, handlers::SagaEvents, projection::StarSchema, store};

pub struct App {
    base: Base,
    config: Config,
    listener: Listeners,
}

impl App {
    pub async fn build(config: Config) -> Result<Self> {
        let reader = config.reader_role.clone();
        // Granting reads of the owner's tables takes the owner.
        let base = Base::start_with(config.common.clone(), sqlx::migrate!("./migrations"), |owner| {
            Box::pin(async move {
                if !store::grant_analyst_reads(owner, &reader).await? {
                    tracing::info!(role = %reader, "no analysts' database role: none granted read access");
                }
                Ok(())
            })
        })
        .await?;
        base.projection(Arc::new(StarSchema));
        let listener = base.bind().await?;
        Ok(Self {
            base,
            config,
            listener,
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
        let consumer = self
            .base
            .consumer(self.base.subscriptions(), Arc::new(SagaEvents::default()));
        let router = api::routes(self.base.pool.clone(), self.config);
        // The dashboard shows aggregate figures only (no order, customer or
        // SKU-level rows) and is opened by a browser, which sends no bearer
        // token: it is served without one. Put it behind the deployment's
        // single sign-on proxy where the figures are confidential.
        self.base.open_path("/dashboard");
        self.base.serve_document(api::document());
        self.base
            .run(self.listener, router, vec![consumer], shutdown)
            .await
    }
}
