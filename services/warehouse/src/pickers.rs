//! The pickers: a bounded pool working the durable pick queue. A task is
//! locked while it is worked (`FOR UPDATE SKIP LOCKED`), so a crash returns it
//! to the queue and another picker redoes it; its events commit with its new
//! status, so nothing is published twice.

use std::time::Duration;

use anyhow::Result;
use chrono::Utc;
use omnisaga_proto::v1::{envelope::Payload, OrderReadyForShipment, OrderShipped};
use omnisaga_runtime::{
    event::{self, EventMeta},
    outbox::{self, OutboxWaker},
    TraceContext,
};
use sqlx::{PgPool, Row};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::store::{self, TaskItem};

#[derive(Clone)]
pub struct Pickers {
    pub pool: PgPool,
    pub waker: OutboxWaker,
    pub warehouse_topic: String,
    pub pick: Duration,
    pub pack: Duration,
    pub ship: Duration,
}

impl Pickers {
    /// One picker: works tasks until `shutdown`, finishing the one in hand.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            // Listening before looking: a task committed meanwhile wakes it at once.
            let committed = self.waker.committed();
            tokio::pin!(committed);
            committed.as_mut().enable();
            match self.work_one().await {
                Ok(true) => backoff = Duration::from_millis(100),
                Ok(false) => {
                    // Nothing due: sleep until the next task falls due or one is committed.
                    let idle = self.next_due().await.unwrap_or(Duration::from_secs(1));
                    tokio::select! {
                        _ = committed => {},
                        _ = tokio::time::sleep(idle) => {},
                        _ = shutdown.cancelled() => {},
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "picker failed, retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {},
                        _ = shutdown.cancelled() => {},
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        Ok(())
    }

    /// How long until the next queued task falls due, at most a second.
    async fn next_due(&self) -> Result<Duration> {
        let seconds: Option<f64> = sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM min(due_at) - clock_timestamp())::float8
             FROM pick_tasks WHERE status IN ('READY', 'PACKED')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Duration::from_secs_f64(seconds.unwrap_or(1.0).clamp(0.005, 1.0)))
    }

    /// Works one due task; false when there was none.
    async fn work_one(&self) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query(
            "SELECT pick_task_id, order_id, items, status, correlation_id, causation_id, traceparent, tracestate
             FROM pick_tasks WHERE status IN ('READY', 'PACKED') AND due_at <= now()
             ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(false);
        };
        let task_id: Uuid = row.get(0);
        let order_id: Uuid = row.get(1);
        let items: Vec<TaskItem> = row.get::<sqlx::types::Json<Vec<TaskItem>>, _>(2).0;
        let status: String = row.get(3);
        let parent = TraceContext {
            traceparent: row.get(6),
            tracestate: row.get(7),
        };
        let correlation_id: String = row.get(4);
        let causation_id: String = row.get(5);
        let order = order_id.to_string();
        let step = if status == "READY" {
            "pick and pack"
        } else {
            "ship"
        };
        let span = tracing::info_span!(
            "pick",
            otel.name = step,
            order.id = %order,
            pick_task.id = %task_id,
            request.id = %correlation_id,
        );
        parent.attach(&span);
        async move {
            let (payload, next_status, due_in) = if status == "READY" {
                tokio::time::sleep(self.pick + self.pack).await;
                let payload = Payload::OrderReadyForShipment(OrderReadyForShipment {
                    order_id: order.clone(),
                    pick_task_id: task_id.to_string(),
                    parcels: 1,
                });
                (payload, "PACKED", self.ship)
            } else {
                store::ship(&mut tx, &items).await?;
                let payload = Payload::OrderShipped(OrderShipped {
                    order_id: order.clone(),
                    carrier: "omnisaga-post".into(),
                    tracking_number: format!("OSP{}", &task_id.simple().to_string()[20..]).to_uppercase(),
                });
                (payload, "SHIPPED", Duration::ZERO)
            };
            let meta = EventMeta { correlation_id, causation_id, trace: TraceContext::current() };
            let (_, version) = store::load(&mut tx, &order).await?;
            let envelope = event::envelope("warehouse", &order, payload, &meta, Utc::now());
            store::append(&mut tx, &order, version, std::slice::from_ref(&envelope)).await?;
            outbox::enqueue(&mut tx, &self.warehouse_topic, &envelope, &meta.trace).await?;
            sqlx::query(
                "UPDATE pick_tasks SET status = $2, due_at = clock_timestamp() + $3 * interval '1 millisecond',
                        causation_id = $4, traceparent = $5, updated_at = now()
                 WHERE pick_task_id = $1",
            )
            .bind(task_id)
            .bind(next_status)
            .bind(due_in.as_millis() as f64)
            .bind(&envelope.event_id)
            .bind(&meta.trace.traceparent)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            self.waker.wake();
            tracing::info!(event.type = %envelope.event_type, "pick task advanced");
            Ok(true)
        }
        .instrument(span)
        .await
    }
}

/// Pick tasks per status: the backlog.
pub async fn backlog(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT status, count(*) FROM pick_tasks WHERE status NOT IN ('SHIPPED', 'CANCELLED')
         GROUP BY status ORDER BY status",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}
