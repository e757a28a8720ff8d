//! The provider callers: a small pool making the calls to the payment
//! provider that the consumer queued (`store::queue_call`), outside every
//! consumer batch. A caller leases the call it makes (`store::claim_call`,
//! one statement, committed at once, which also reads the order's payment
//! stream) and holds no transaction while it asks the order
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
//!
//! Ambiguous answers: the payment id of an attempt is its idempotency key.
//! An answer that does not say whether the provider charged ("unavailable",
//! an error, a timeout) is asked again with the same key and then by key
//! ([`ProviderCalls::certain_answer`]) before the attempt may fail; and
//! before a new attempt, each earlier one is asked by its key and an
//! approval the provider holds for it is voided (a charge that came late).

use std::{sync::Arc, time::Duration};

use anyhow::Result;
use async_trait::async_trait;
use omnisaga_runtime::{
    aggregate::{Aggregate, ExecuteError, Executor, Loaded},
    event::EventMeta,
    failpoint,
    hand_back::HandBack,
    work::{self, Claimed, Then, Wakes, Worker},
    work::{OutboxWaker, Written},
    TraceContext,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    application::OUTCOMES,
    domain::{self, Command, PaymentAggregate, ProviderAnswer, Request},
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

/// Times an ambiguous authorisation is asked with its key before the
/// provider is asked for its outcome ([`ProviderCalls::certain_answer`]).
pub const AMBIGUOUS_TRIES: u32 = 3;
/// Wait before asking an ambiguous authorisation again; it doubles.
const AMBIGUOUS_WAIT: Duration = Duration::from_millis(100);

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

    /// The oldest call nobody holds, leased in one statement. After it the
    /// caller looks again only when the claim saw another call waiting (and
    /// wakes an idle caller for it); otherwise it waits for a commit that
    /// queues one, which it listened for before it looked.
    async fn claim(&self) -> Result<Claimed<Self::Work>> {
        let claimed = store::claim_call(&self.pool, self.lease(), &PaymentAggregate::stream("")).await?;
        Ok(match claimed {
            Some((call, more)) => Claimed::Work {
                work: call,
                then: if more {
                    Then::WakeAnother
                } else {
                    Then::Wait(IDLE_POLL)
                },
            },
            None => Claimed::Wait(IDLE_POLL),
        })
    }

    async fn work(&self, call: Call) -> Result<()> {
        let id = call.id;
        // Stopped in the middle of the call, it gives the lease up at once:
        // made again, the call asks with the same payment id.
        let pool = self.pool.clone();
        let lease = HandBack::new(move || {
            Box::pin(async move {
                match store::release_call(&pool, id).await {
                    Ok(()) => tracing::info!(call.id = id, "call handed back at shutdown"),
                    Err(e) => {
                        tracing::warn!(error = %e, "lease kept: the call is made again when it runs out")
                    }
                }
            })
        });
        let made = self.make(call).await;
        lease.keep();
        match made {
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
    /// (the order service, then the provider: an earlier attempt's look-up,
    /// [`AMBIGUOUS_TRIES`] asks and the look-up of an ambiguous one), and a
    /// margin. A lease that runs out anyway only lets another caller make
    /// the same call with the same key, which charges nothing twice.
    fn lease(&self) -> Duration {
        crate::orders::TIMEOUT + (AMBIGUOUS_TRIES + 2) * self.provider.timeout() + LEASE_MARGIN
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
            omnisaga.db.statement_count = tracing::field::Empty,
        );
        call.trace.attach(&span);
        let made = async move {
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
        };
        omnisaga_runtime::db::counted(&span, made)
            .instrument(span.clone())
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
        // The stream as the claim read it.
        let before = Loaded::<PaymentAggregate>::fold(call.stream.clone())?;
        if let Err(refusal) = domain::attempt(&before.state, &request) {
            if let Some(number) = domain::unrecorded_attempt(&before.state, &request, &refusal) {
                self.void_unrecorded(&domain::payment_id(&order, number)).await?;
            }
            tracing::debug!(reason = %refusal, "attempt not made");
            self.done(call.id).await?;
            return Ok(false);
        }
        self.void_earlier(&order, &request).await?;
        let token = match (token, &request) {
            ("", Request::Placed { .. }) => self.orders.payment_method(call.order_id, 1).await?,
            ("", Request::Retry { attempt }) => self.orders.payment_method(call.order_id, *attempt).await?,
            (token, _) => Some(token.to_owned()),
        };
        let answer = match token {
            // Nothing to charge: the order hears a failed payment it can
            // retry or cancel, and the calls queued behind this one go on.
            None => ProviderAnswer::Declined(UNKNOWN_PAYMENT_METHOD.into()),
            Some(token) => match self.certain_answer(&call.payment_id, &token).await? {
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
        let approved = matches!(answer, ProviderAnswer::Approved);
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
            OUTCOMES
                .with_label_values(&[crate::application::outcome(out)])
                .inc();
            tracing::info!(event.type = %out.event_type, "payment event");
        }
        store::update_view(&mut tx, call.order_id, &done).await?;
        if approved {
            failpoint::hit(failpoint::PROVIDER_APPROVED);
        }
        tx.commit().await?;
        Ok(!done.published.is_empty())
    }

    /// The provider's answer to the attempt `payment_id`, made certain
    /// before anything is recorded. An ambiguous answer ("unavailable", or
    /// none: an error or a timeout) does not say the provider took nothing,
    /// so the same call is asked again with the same payment id, the
    /// idempotency key ([`AMBIGUOUS_TRIES`] in all, waits doubling from
    /// [`AMBIGUOUS_WAIT`]), and then the provider is asked for the outcome
    /// by that key. Only when it holds nothing under the key is the attempt
    /// failed as unavailable, so a new attempt (a new payment id) is never
    /// made while an earlier one may have charged. With no answer at all
    /// the error stands: the call stays queued and is made again, with the
    /// same key.
    async fn certain_answer(&self, payment_id: &str, token: &str) -> Result<Outcome> {
        let mut wait = AMBIGUOUS_WAIT;
        let mut last = Ok(Outcome::Unavailable);
        for tried in 1..=AMBIGUOUS_TRIES {
            last = self.provider.authorize(payment_id, token).await;
            match &last {
                Ok(Outcome::Unavailable) | Err(_) => {}
                Ok(_) => return last,
            }
            if tried < AMBIGUOUS_TRIES {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        let known = self.provider.lookup(payment_id).await?;
        OUTCOMES
            .with_label_values(&[if known.is_some() {
                "ambiguous_found"
            } else {
                "ambiguous_none"
            }])
            .inc();
        match known {
            Some(outcome) => {
                tracing::warn!(
                    payment.id = payment_id,
                    ?outcome,
                    "the provider had answered: its outcome, asked by key"
                );
                Ok(outcome)
            }
            None => last,
        }
    }

    /// Before the new attempt `request` makes (the stream said it may be
    /// made): the earlier attempts of the order all failed, yet one answered
    /// ambiguously may have charged after all (an answer that came after
    /// its outcome was asked). The provider is asked by each earlier key,
    /// and an approval it holds is voided: the order is never authorised
    /// twice.
    async fn void_earlier(&self, order: &str, request: &Request) -> Result<()> {
        let number = match request {
            Request::Placed { .. } => 1,
            Request::Retry { attempt } => *attempt,
        };
        for earlier in 1..number {
            self.void_unrecorded(&domain::payment_id(order, earlier)).await?;
        }
        Ok(())
    }

    /// Voids an approval the provider holds for an attempt the stream does
    /// not hold as authorised: its recording was rolled back (see
    /// [`domain::unrecorded_attempt`]) or it was recorded as failed.
    async fn void_unrecorded(&self, payment_id: &str) -> Result<()> {
        if self.provider.holds(payment_id).await? {
            self.provider.void(payment_id).await?;
            OUTCOMES.with_label_values(&["voided_unrecorded"]).inc();
            tracing::warn!(
                payment.id = payment_id,
                "voided an approval the payment stream does not hold"
            );
        }
        Ok(())
    }
}
