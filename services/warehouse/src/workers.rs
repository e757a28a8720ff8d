//! The pickers: a bounded pool working the durable pick queue. A task is
//! claimed with `FOR UPDATE SKIP LOCKED`; shipping is worked in that
//! transaction, while picking and packing, which take time, are worked
//! under a lease (the task's due time moved past them, committed), so no
//! transaction stays open while a picker waits. A crash returns the task
//! to the queue (at once, or when its lease runs out) and another picker
//! redoes it; its events commit with its new status, so nothing is
//! published twice. The queue says which step is due;
//! whether it may happen is decided over the order's stream.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::Result;
use async_trait::async_trait;
use omnisaga_runtime::{
    aggregate::{ExecuteError, Executor},
    event::{occurred_at, EventMeta},
    hand_back::HandBack,
    work::{self, Claimed, Then, Wakes, Worker},
    work::{OutboxWaker, Written},
    TraceContext,
};
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    domain::{self, Command, Fulfilment, FulfilmentAggregate},
    store::{self, Claim, DueTask, TaskStatus},
};

/// Longest an idle picker waits before looking at the queue again; a commit
/// wakes it sooner.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Shortest wait for a task about to fall due.
const MIN_WAIT: Duration = Duration::from_millis(1);
/// How much longer than picking and packing a picker holds its task's lease.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// A claimed task: locked in its transaction (to ship), or leased (to pick
/// and pack, outside any transaction).
pub enum Step {
    Locked(Transaction<'static, Postgres>, DueTask),
    Leased(DueTask),
}

#[derive(Clone)]
pub struct Pickers {
    pub pool: PgPool,
    pub waker: OutboxWaker,
    pub warehouse_topic: String,
    pub pick: Duration,
    pub pack: Duration,
    pub ship: Duration,
    /// The `OrderShipped` version it publishes (`WAREHOUSE_ORDER_SHIPPED_VERSION`).
    pub order_shipped_version: u32,
    /// Whether this picker's last step was a pack.
    pub packed: Packed,
}

impl Pickers {
    /// One picker: works tasks until `shutdown`, finishing the one in hand.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let waker = self.waker.clone();
        work::run(self, waker, Wakes::Work, shutdown).await
    }
}

#[async_trait]
impl Worker for Pickers {
    /// A due task, locked in its transaction or leased.
    type Work = Step;

    fn name(&self) -> &'static str {
        "picker"
    }

    /// The task due first, or how long to wait for one (at most
    /// [`IDLE_POLL`]; a commit wakes the picker sooner). One statement on the
    /// pool claims and leases a task to pick; a task to ship is shipped in
    /// the transaction that claims it, so a picker that expects one (its
    /// last step was a pack, and no task has fallen due since) looks in a
    /// transaction, and one that finds one outside a transaction looks
    /// again in one.
    async fn claim(&self) -> Result<Claimed<Self::Work>> {
        let lease = self.pick + self.pack + LEASE_MARGIN;
        let packed = self.packed.0.swap(false, Ordering::Relaxed);
        if !packed {
            match store::claim_next_task(&self.pool, lease).await? {
                Claim::Due { task, .. } if task.packed => {}
                Claim::Due { task, more, next_in } => {
                    return Ok(Claimed::Work {
                        then: then(&task, more, next_in),
                        work: Step::Leased(task),
                    })
                }
                Claim::NotYet(due_in) => return Ok(Claimed::Wait(due_in.clamp(MIN_WAIT, IDLE_POLL))),
                Claim::Empty => return Ok(Claimed::Wait(IDLE_POLL)),
            }
        }
        let mut tx = self.pool.begin().await?;
        let wait = match store::claim_next_task(&mut *tx, lease).await? {
            Claim::Due { task, more, next_in } => {
                let then = then(&task, more, next_in);
                if task.packed {
                    return Ok(Claimed::Work {
                        work: Step::Locked(tx, task),
                        then,
                    });
                }
                tx.commit().await?;
                return Ok(Claimed::Work {
                    work: Step::Leased(task),
                    then,
                });
            }
            Claim::NotYet(due_in) => {
                // Most likely the task it packed, not due to ship yet.
                self.packed.0.store(packed, Ordering::Relaxed);
                due_in.clamp(MIN_WAIT, IDLE_POLL)
            }
            Claim::Empty => IDLE_POLL,
        };
        // Release the task locked but not due now, not when the pool gets
        // round to it: the next look must not skip it.
        tx.rollback().await?;
        Ok(Claimed::Wait(wait))
    }

    async fn work(&self, step: Step) -> Result<()> {
        self.work_one(step).await
    }
}

impl Pickers {
    /// Works the claimed task's next step.
    async fn work_one(&self, claimed: Step) -> Result<()> {
        let task = match &claimed {
            Step::Locked(_, task) | Step::Leased(task) => task,
        };
        let step = if task.packed { "ship" } else { "pick and pack" };
        let span = tracing::info_span!(
            "pick",
            otel.name = step,
            order.id = %task.order_id,
            pick_task.id = %task.pick_task_id,
            request.id = %task.correlation_id,
            omnisaga.db.statement_count = tracing::field::Empty,
        );
        task.trace.attach(&span);
        let step = async move {
            let (tx, task) = match claimed {
                Step::Locked(tx, task) => (tx, task),
                Step::Leased(task) => {
                    // Stopped in the middle of picking, it gives the lease
                    // up at once; the step is decided over the stream again.
                    let (pool, id) = (self.pool.clone(), task.pick_task_id);
                    let lease = HandBack::new(move || {
                        Box::pin(async move {
                            match store::hand_back_task(&pool, id).await {
                                Ok(()) => {
                                    tracing::info!(pick_task.id = %id, "pick task handed back at shutdown")
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "lease kept: the task falls due when it runs out")
                                }
                            }
                        })
                    });
                    tokio::time::sleep(self.pick + self.pack).await;
                    lease.keep();
                    let mut tx = self.pool.begin().await?;
                    if !store::relock_task(&mut tx, task.pick_task_id, TaskStatus::Ready).await? {
                        tracing::info!("pick task no longer ready after picking: nothing to record");
                        tx.rollback().await?;
                        return Ok(());
                    }
                    (tx, task)
                }
            };
            self.work(tx, task).await
        };
        omnisaga_runtime::db::counted(&span, step)
            .instrument(span.clone())
            .await
    }

    /// Load, decide, work, append: the task's next step, if its stream allows it.
    async fn work(&self, mut tx: Transaction<'_, Postgres>, task: DueTask) -> Result<()> {
        let order = task.order_id.to_string();
        let step = next_step(&task, self.order_shipped_version == 1);
        let executor = Executor::<FulfilmentAggregate>::new(&self.warehouse_topic);
        let loaded = executor.load(&mut tx, &order).await?;
        // The stream is the truth: a refused task goes where it says, so it never blocks the queue.
        let status_if_refused = queue_status(&loaded.state, &task.pick_task_id.to_string());
        if let Err(reason) = domain::decide(&loaded.state, step.clone()) {
            tracing::warn!(%reason, pick_task.status = status_if_refused.as_str(), "pick task refused");
            store::requeue_task(&mut tx, task.pick_task_id, status_if_refused).await?;
            tx.commit().await?;
            return Ok(());
        }
        let (next_status, due_in) = if task.packed {
            (TaskStatus::Shipped, Duration::ZERO)
        } else {
            (TaskStatus::Packed, self.ship)
        };
        let meta = EventMeta {
            correlation_id: task.correlation_id,
            causation_id: task.causation_id,
            trace: TraceContext::current(),
        };
        let done = match executor.decide(&mut tx, &order, loaded, step, None, &meta).await {
            Ok(done) => done,
            Err(ExecuteError::Store(e)) => return Err(e.into()),
            Err(e) => anyhow::bail!("pick task step not recorded: {e}"),
        };
        let appended = done.appended;
        let caused = appended.last().map_or("", |e| e.event_id.as_str());
        // A step decided is an event appended: the task moved when it occurred.
        let Some(at) = appended.last().map(occurred_at) else {
            anyhow::bail!("pick task step decided no event");
        };
        let traceparent = meta.trace.traceparent.as_deref();
        store::advance_task(
            &mut tx,
            task.pick_task_id,
            (next_status, at),
            due_in,
            caused,
            traceparent,
        )
        .await?;
        if task.packed {
            // Last before the commit: the stock rows are shared by every
            // order of their SKUs, so their locks are held for the commit only.
            store::ship(&mut tx, &task.items).await?;
        }
        tx.commit().await?;
        // This picker looks for the next due task itself, first for the one
        // it packed.
        self.packed.0.store(!task.packed, Ordering::Relaxed);
        self.waker.wake_for(Written::OUTBOX);
        for env in &appended {
            tracing::info!(event.type = %env.event_type, "pick task advanced");
        }
        Ok(())
    }
}

/// What a picker does after the task it claimed. Another due: it wakes an
/// idle picker and looks again. Otherwise, after picking and packing it looks
/// again, since its own task falls due to ship and only a look says when;
/// after shipping it waits for a commit that queues work, or until the
/// first other task falls due.
fn then(task: &DueTask, more: bool, next_in: Option<Duration>) -> Then {
    if more {
        Then::WakeAnother
    } else if !task.packed {
        Then::LookAgain
    } else {
        Then::Wait(next_in.map_or(IDLE_POLL, |d| d.clamp(MIN_WAIT, IDLE_POLL)))
    }
}

/// One picker's note that its last step was a pack, so its next look
/// expects the task it packed, due to ship (in the transaction that claims
/// it). Each picker has its own: a clone starts without it.
#[derive(Debug, Default)]
pub struct Packed(AtomicBool);

impl Clone for Packed {
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// The command a due task asks for: pack a picked one, ship a packed one.
fn next_step(task: &DueTask, as_v1: bool) -> Command {
    let order_id = task.order_id.to_string();
    let pick_task_id = task.pick_task_id.to_string();
    if !task.packed {
        return Command::Pack {
            order_id,
            pick_task_id,
            parcels: 1,
        };
    }
    Command::Ship {
        order_id,
        pick_task_id,
        carrier: "omnisaga-post".into(),
        tracking_number: format!("OSP{}", &task.pick_task_id.simple().to_string()[20..]).to_uppercase(),
        as_v1,
    }
}

/// Where task `pick_task_id` belongs in the queue by its order's stream.
pub(crate) fn queue_status(state: &Fulfilment, pick_task_id: &str) -> TaskStatus {
    if state.shipped {
        TaskStatus::Shipped
    } else if state.cancelled || state.pick_task_id.as_deref() != Some(pick_task_id) {
        TaskStatus::Cancelled
    } else if state.ready {
        TaskStatus::Packed
    } else if state.paid {
        TaskStatus::Ready
    } else {
        TaskStatus::WaitingPayment
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnisaga_proto::v1::PickTaskCreated;

    use crate::domain::Event;

    #[test]
    fn a_refused_task_goes_where_its_stream_says() {
        let created = Event::PickTaskCreated(PickTaskCreated {
            pick_task_id: "t-1".into(),
            ..Default::default()
        });
        let state = |events: &[Event]| {
            [vec![created.clone()], events.to_vec()]
                .concat()
                .iter()
                .fold(Fulfilment::default(), domain::evolve)
        };
        let paid = Event::PaymentAuthorized(Default::default());
        let ready = Event::OrderReadyForShipment(Default::default());
        let shipped = Event::OrderShipped(Default::default());
        let cancelled = Event::OrderCancelled(Default::default());
        for (events, status) in [
            (vec![], TaskStatus::WaitingPayment),
            (vec![paid.clone()], TaskStatus::Ready),
            (vec![paid.clone(), ready.clone()], TaskStatus::Packed),
            (
                vec![paid.clone(), ready.clone(), shipped.clone()],
                TaskStatus::Shipped,
            ),
            (vec![paid.clone(), cancelled.clone()], TaskStatus::Cancelled),
            (vec![paid, ready, shipped, cancelled], TaskStatus::Shipped),
        ] {
            assert_eq!(queue_status(&state(&events), "t-1"), status, "{events:?}");
        }
        assert_eq!(queue_status(&state(&[]), "t-other"), TaskStatus::Cancelled);
    }
}
