//! Saga deadlines, checked every `tick`: an order that still awaits payment
//! when its payment deadline passes is cancelled (its compensations follow
//! from `OrderCancelled`), and a customer whose order has had no payment
//! answer for longer than the notice period is told payment is delayed.

use std::time::Duration;

use anyhow::Result;
use omnisaga_runtime::TraceContext;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    commands::{CommandError, Orders},
    domain::{Command, PAYMENT_DEADLINE_PASSED},
    store as db,
};

pub struct Deadlines {
    pub orders: Orders,
    pub delay_notice: Duration,
    pub tick: Duration,
}

impl Deadlines {
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        while !shutdown.is_cancelled() {
            if let Err(e) = self.check().await {
                tracing::warn!(error = %format!("{e:#}"), "deadline check failed, retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.tick) => {},
                _ = shutdown.cancelled() => {},
            }
        }
        Ok(())
    }

    async fn check(&self) -> Result<()> {
        for (order_id, traceparent) in db::past_payment_deadline(&self.orders.pool, 100).await? {
            let cmd = Command::Cancel {
                reason: PAYMENT_DEADLINE_PASSED.into(),
            };
            let span = tracing::info_span!("payment deadline", order.id = %order_id);
            TraceContext {
                traceparent,
                tracestate: None,
            }
            .attach(&span);
            match self
                .orders
                .execute(order_id, cmd, None)
                .instrument(span.clone())
                .await
            {
                Ok(_) => span.in_scope(|| tracing::info!("payment deadline passed, order cancelled")),
                Err(CommandError::Domain(_)) => {} // paid or cancelled meanwhile
                Err(e) => return Err(e.into()),
            }
        }
        for (order_id, waited_ms, traceparent) in
            db::payment_delayed(&self.orders.pool, self.delay_notice, 100).await?
        {
            let span = tracing::info_span!("payment delay notice", order.id = %order_id);
            TraceContext {
                traceparent,
                tracestate: None,
            }
            .attach(&span);
            let cmd = Command::NoticePaymentDelay { waited_ms };
            match self
                .orders
                .execute(order_id, cmd, None)
                .instrument(span.clone())
                .await
            {
                Ok(_) => span.in_scope(|| tracing::info!(waited_ms, "payment delayed, customer told")),
                Err(CommandError::Domain(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
