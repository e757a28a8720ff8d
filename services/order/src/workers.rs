//! Saga deadlines, looked for every `tick`: an order that still awaits
//! payment when its payment deadline passes is cancelled (its compensations
//! follow from `OrderCancelled`), and a customer whose order has had no
//! payment answer for longer than the notice period is told payment is
//! delayed. It is the runtime's durable-work loop (`work::run`) over the
//! order view, like every other worker: one look finds both, the
//! cancellations are made first (a notice for an order cancelled meanwhile
//! is refused by the order and left).

use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use omnisaga_runtime::{
    work::{self, Claimed, OutboxWaker, Then, Wakes, Worker},
    TraceContext,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    application::{CommandError, Orders},
    domain::Command,
    store as db,
};

/// Most orders of one kind taken in one look.
const BATCH: i64 = 100;

#[derive(Clone)]
pub struct Deadlines {
    pub orders: Orders,
    pub delay_notice: Duration,
    pub tick: Duration,
}

/// What a look found due.
pub struct Due {
    /// Orders past their payment deadline, with the trace they were placed in.
    cancellations: Vec<(Uuid, Option<String>)>,
    /// Orders waiting for a payment answer past the notice period: how long.
    notices: Vec<(Uuid, i64, Option<String>)>,
}

impl Deadlines {
    /// Runs until `shutdown`, looking every `tick` only: on a waker of its
    /// own that no commit wakes (the service's waker is woken by every
    /// placed order, which would cost a look per order on the saga's path).
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        work::run(self, OutboxWaker::default(), Wakes::Work, shutdown).await
    }

    /// Runs `cmd` on `order_id` in a span continuing the order's trace; a
    /// command the order refuses (paid or cancelled meanwhile) is no failure.
    async fn execute(
        &self,
        order_id: Uuid,
        cmd: Command,
        span: tracing::Span,
        traceparent: Option<String>,
    ) -> Result<bool> {
        TraceContext {
            traceparent,
            tracestate: None,
        }
        .attach(&span);
        let executed = omnisaga_runtime::db::counted(&span, self.orders.execute(order_id, cmd, None));
        match executed.instrument(span.clone()).await {
            Ok(_) => Ok(true),
            Err(CommandError::Domain(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl Worker for Deadlines {
    type Work = Due;

    fn name(&self) -> &'static str {
        "deadline checker"
    }

    async fn claim(&self) -> Result<Claimed<Due>> {
        let cancellations = db::past_payment_deadline(&self.orders.pool, BATCH).await?;
        let notices = db::payment_delayed(&self.orders.pool, self.delay_notice, BATCH).await?;
        if cancellations.is_empty() && notices.is_empty() {
            return Ok(Claimed::Wait(self.tick));
        }
        Ok(Claimed::Work {
            work: Due {
                cancellations,
                notices,
            },
            then: Then::Wait(self.tick),
        })
    }

    async fn work(&self, due: Due) -> Result<()> {
        for (order_id, traceparent) in due.cancellations {
            let span = tracing::info_span!(
                "payment deadline",
                order.id = %order_id,
                omnisaga.db.statement_count = tracing::field::Empty,
            );
            let cmd = Command::PaymentDeadlinePassed;
            if self.execute(order_id, cmd, span.clone(), traceparent).await? {
                span.in_scope(|| tracing::info!("payment deadline passed, order cancelled"));
            }
        }
        for (order_id, waited_ms, traceparent) in due.notices {
            let span = tracing::info_span!(
                "payment delay notice",
                order.id = %order_id,
                omnisaga.db.statement_count = tracing::field::Empty,
            );
            let cmd = Command::NoticePaymentDelay { waited_ms };
            if self.execute(order_id, cmd, span.clone(), traceparent).await? {
                span.in_scope(|| tracing::info!(waited_ms, "payment delayed, customer told"));
            }
        }
        Ok(())
    }
}
