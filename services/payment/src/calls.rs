//! The provider callers: a small pool making the calls to the payment
//! provider that the consumer queued (`store::queue_call`), outside every
//! consumer batch. A caller leases the call it makes (`store::claim_call`,
//! committed at once) and holds no transaction while it asks the order
//! service and the provider, each call bounded by its timeout; the lease
//! outlasts them, and a call whose caller died or failed is made again by
//! another; the provider answers a payment id it knows with its first
//! answer, so asking twice charges once.
//!
//! An authorisation is decided over the order's stream twice: before the
//! provider is asked (a cancelled or paid order is never charged) and when
//! its answer is recorded, in the transaction that takes the call off the
//! queue. When the recording is lost (a crash, a lost connection, a stream
//! that moved on meanwhile), the call is made again; if by then nothing is
//! to be paid any more, the approval the provider holds is voided
//! ([`domain::unrecorded_attempt`]).

use std::{sync::Arc, time::Duration};

use anyhow::Result;
use async_trait::async_trait;
use omnisaga_runtime::{
    aggregate::{ExecuteError, Executor},
    event::EventMeta,
    outbox::{OutboxWaker, Written},
    work::{self, Claimed, Then, Wakes, Worker},
    TraceContext,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    domain::{self, Command, PaymentAggregate, ProviderAnswer, Request},
    handlers::OUTCOMES,
    orders::OrderService,
    provider::{Outcome, Provider},
    store::{self, Action, Call},
};

/// The reason of the failed payment recorded when the order service knows
/// no payment method for the attempt (its answer was 404).
pub const UNKNOWN_PAYMENT_METHOD: &str = "payment_method_unknown";

/// Longest an idle caller waits before looking at the queue again; the
/// consumer's commits wake it sooner.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How much longer than its outside calls may take a caller leases a call.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct ProviderCalls {
    pub pool: PgPool,
    pub waker: OutboxWaker,
    pub provider: Arc<Provider>,
    pub payments_topic: String,
    /// Asked for the payment token when the event that queued the call
    /// carried none (the topics do not).
    pub orders: OrderService,
}

impl ProviderCalls {
    /// One caller: makes calls until `shutdown`, finishing the one in hand.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let waker = self.waker.clone();
        work::run(self, waker, Wakes::Work, shutdown).await
    }
}

#[async_trait]
impl Worker for ProviderCalls {
    /// The oldest queued call, leased.
    type Work = Call;

    fn name(&self) -> &'static str {
        "provider caller"
    }

    async fn claim(&self) -> Result<Claimed<Self::Work>> {
        let mut tx = self.pool.begin().await?;
        let claimed = store::claim_call(&mut tx, self.lease()).await?;
        tx.commit().await?;
        Ok(match claimed {
            Some((call, more)) => Claimed::Work {
                work: call,
                then: if more { Then::WakeAnother } else { Then::LookAgain },
            },
            None => Claimed::Wait(IDLE_POLL),
        })
    }

    async fn work(&self, call: Call) -> Result<()> {
        let id = call.id;
        match self.make(call).await {
            // This caller looks for the next call itself.
            Ok(written) => {
                if written {
                    self.waker.wake_for(Written::OUTBOX);
                }
                Ok(())
            }
            Err(e) => {
                if let Err(release) = store::release_call(&self.pool, id).await {
                    tracing::warn!(error = %release, "lease kept: the call is made again when it runs out");
                }
                Err(e)
            }
        }
    }
}

impl ProviderCalls {
    /// How long a caller holds a call: the longest its outside calls take
    /// (the order service, then the provider twice at most), and a margin.
    fn lease(&self) -> Duration {
        crate::orders::TIMEOUT + 2 * self.provider.timeout() + LEASE_MARGIN
    }

    /// Makes the leased `call` and takes it off the queue, recording the
    /// answer in a transaction opened only once the answer is in hand.
    /// Returns whether events were published. Its span continues the trace
    /// of the event that queued the call.
    pub async fn make(&self, call: Call) -> Result<bool> {
        let name = match call.action {
            Action::Authorize { .. } => "authorize payment",
            Action::Void => "void payment",
        };
        let span = tracing::info_span!(
            "provider call",
            otel.name = name,
            order.id = %call.order_id,
            payment.id = %call.payment_id,
            request.id = %call.correlation_id,
        );
        call.trace.attach(&span);
        async move {
            match call.action {
                Action::Void => {
                    self.provider.void(&call.payment_id).await?;
                    self.done(call.id).await?;
                    Ok(false)
                }
                Action::Authorize {
                    ref request,
                    ref token,
                } => self.authorize(&call, request.clone(), token).await,
            }
        }
        .instrument(span)
        .await
    }

    /// Takes call `id` off the queue in a transaction of its own.
    async fn done(&self, id: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        store::call_done(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Asks the provider about the attempt `request` makes, once the stream
    /// says it may be made, and records the answer.
    async fn authorize(&self, call: &Call, request: Request, token: &str) -> Result<bool> {
        let executor = Executor::<PaymentAggregate>::new(&self.payments_topic);
        let order = call.order_id.to_string();
        let before = {
            let mut conn = self.pool.acquire().await?;
            executor.load(&mut conn, &order).await?
        };
        if let Err(refusal) = domain::attempt(&before.state, &request) {
            if let Some(number) = domain::unrecorded_attempt(&before.state, &request, &refusal) {
                self.void_unrecorded(&domain::payment_id(&order, number)).await?;
            }
            tracing::debug!(reason = %refusal, "attempt not made");
            self.done(call.id).await?;
            return Ok(false);
        }
        let token = match (token, &request) {
            ("", Request::Placed { .. }) => self.orders.payment_method(call.order_id, 1).await?,
            ("", Request::Retry { attempt }) => self.orders.payment_method(call.order_id, *attempt).await?,
            (token, _) => Some(token.to_owned()),
        };
        let answer = match token {
            // Nothing to charge: the order hears a failed payment it can
            // retry or cancel, and the calls queued behind this one go on.
            None => ProviderAnswer::Declined(UNKNOWN_PAYMENT_METHOD.into()),
            Some(token) => match self.provider.authorize(&call.payment_id, &token).await? {
                Outcome::Approved => ProviderAnswer::Approved,
                Outcome::Declined(reason) => ProviderAnswer::Declined(reason),
                Outcome::Unavailable => ProviderAnswer::Unavailable,
            },
        };
        // The answer in hand: recorded over the stream as it is now, with
        // the call taken off the queue, or not at all.
        let mut tx = self.pool.begin().await?;
        if !store::call_done(&mut tx, call.id).await? {
            // Its lease ran out and another caller made it and recorded the
            // same answer (the provider gives a payment id one).
            tracing::info!("call already made by another caller");
            return Ok(false);
        }
        let loaded = executor.load(&mut tx, &order).await?;
        let cmd = Command::Authorize {
            order_id: order.clone(),
            request,
            answer,
        };
        let meta = EventMeta {
            correlation_id: call.correlation_id.clone(),
            causation_id: call.causation_id.clone(),
            trace: TraceContext::current(),
        };
        let done = match executor.decide(&mut tx, &order, loaded, cmd, None, &meta).await {
            Ok(done) => done,
            Err(ExecuteError::Store(e)) => return Err(e.into()),
            Err(e) => anyhow::bail!("provider answer not recorded: {e}"),
        };
        for out in &done.published {
            OUTCOMES.with_label_values(&[crate::handlers::outcome(out)]).inc();
            tracing::info!(event.type = %out.event_type, "payment event");
        }
        store::update_view(&mut tx, call.order_id, &done.state).await?;
        tx.commit().await?;
        Ok(!done.published.is_empty())
    }

    /// Voids an approval the provider holds for an attempt that was never
    /// recorded (see [`domain::unrecorded_attempt`]).
    async fn void_unrecorded(&self, payment_id: &str) -> Result<()> {
        if self.provider.holds(payment_id).await? {
            self.provider.void(payment_id).await?;
            OUTCOMES.with_label_values(&["voided_unrecorded"]).inc();
            tracing::warn!(
                payment.id = payment_id,
                "voided an approval whose recording was rolled back"
            );
        }
        Ok(())
    }
}
