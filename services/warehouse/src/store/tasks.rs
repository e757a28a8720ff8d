//! Pick tasks: created with the reservation, claimed and leased by the
//! pickers, advanced to shipped or cancelled.

use std::time::Duration;

use chrono::{DateTime, Utc};
use omnisaga_proto::v1::LineItem;
use omnisaga_runtime::{work, TraceContext};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgExecutor, PgPool, Row};
use uuid::Uuid;

use super::TaskStatus;

/// Locks an order's task row, if it has one. Every writer of an order's
/// stream takes it first, as the pickers do, so none of them deadlock.
pub async fn lock_task(conn: &mut PgConnection, order_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1 FROM pick_tasks WHERE order_id = $1 FOR UPDATE")
        .bind(order_id)
        .fetch_optional(conn)
        .await?;
    Ok(())
}

/// Takes an order's task off the queue, as its cancellation occurred at
/// `at`; a shipped task stays done.
pub async fn cancel_task(
    conn: &mut PgConnection,
    order_id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE pick_tasks SET status = 'CANCELLED', updated_at = $2 WHERE order_id = $1 AND status <> 'SHIPPED'")
        .bind(order_id)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Shipped goods leave the building: on hand and reserved both go down, by
/// counting them in `shipped` (see the migration `1001_shipped.sql`), not in
/// the `stock` row the reservations lock. Rows are locked in SKU order, so
/// two pickers never wait for each other's rows.
pub async fn ship(conn: &mut PgConnection, items: &[TaskItem]) -> Result<(), sqlx::Error> {
    let mut items: Vec<&TaskItem> = items.iter().collect();
    items.sort_by(|a, b| a.sku.cmp(&b.sku));
    for i in items {
        sqlx::query(
            "INSERT INTO shipped (sku, quantity) VALUES ($1, $2)
             ON CONFLICT (sku) DO UPDATE SET quantity = shipped.quantity + EXCLUDED.quantity",
        )
        .bind(&i.sku)
        .bind(i64::from(i.quantity))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskItem {
    pub sku: String,
    #[schema(minimum = 1)]
    pub quantity: u32,
}

/// Context the events of a pick task carry on.
#[derive(Debug, Clone, Default)]
pub struct TaskContext {
    pub correlation_id: String,
    pub causation_id: String,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

/// Queues an order's pick task, created when its `PickTaskCreated`
/// occurred (`created_at`, as a rebuild makes it again).
pub async fn create_task(
    conn: &mut PgConnection,
    pick_task_id: Uuid,
    order_id: Uuid,
    items: &[LineItem],
    ready: bool,
    ctx: &TaskContext,
    created_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let items: Vec<TaskItem> = items
        .iter()
        .map(|i| TaskItem {
            sku: i.sku.clone(),
            quantity: i.quantity,
        })
        .collect();
    sqlx::query(
        "INSERT INTO pick_tasks (pick_task_id, order_id, items, status, correlation_id, causation_id, traceparent,
                                 tracestate, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(pick_task_id)
    .bind(order_id)
    .bind(sqlx::types::Json(items))
    .bind(if ready { TaskStatus::Ready } else { TaskStatus::WaitingPayment }.as_str())
    .bind(&ctx.correlation_id)
    .bind(&ctx.causation_id)
    .bind(&ctx.traceparent)
    .bind(&ctx.tracestate)
    .bind(created_at)
    .execute(conn)
    .await?;
    if ready {
        work::note_work();
    }
    Ok(())
}

/// Makes a waiting task workable once its order is paid (the payment's
/// event occurred at `at`).
pub async fn release_task(
    conn: &mut PgConnection,
    order_id: Uuid,
    ctx: &TaskContext,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let released = sqlx::query(
        "UPDATE pick_tasks SET status = 'READY', due_at = now(), updated_at = $6,
                correlation_id = $2, causation_id = $3, traceparent = $4, tracestate = $5
         WHERE order_id = $1 AND status = 'WAITING_PAYMENT'",
    )
    .bind(order_id)
    .bind(&ctx.correlation_id)
    .bind(&ctx.causation_id)
    .bind(&ctx.traceparent)
    .bind(&ctx.tracestate)
    .bind(at)
    .execute(conn)
    .await?;
    if released.rows_affected() > 0 {
        work::note_work();
    }
    Ok(())
}

/// A workable task, locked by the picker that claimed it.
pub struct DueTask {
    pub pick_task_id: Uuid,
    pub order_id: Uuid,
    pub items: Vec<TaskItem>,
    /// Picked and packed: shipping is next.
    pub packed: bool,
    pub correlation_id: String,
    pub causation_id: String,
    pub trace: TraceContext,
}

/// What a picker finds in the queue.
pub enum Claim {
    /// The task due first, locked by this picker, and leased if it is to be
    /// picked; `more` when another task is due as well (perhaps held by
    /// another picker, which then makes one idle picker look in vain);
    /// `next_in`, how long until the first other open task falls due (zero
    /// when one is due), if one is queued.
    Due {
        task: DueTask,
        more: bool,
        next_in: Option<Duration>,
    },
    /// Nothing is due yet: the first task no other picker holds falls due
    /// in this long.
    NotYet(Duration),
    /// No task is queued that no other picker holds.
    Empty,
}

/// Claims the task due first, skipping those other pickers hold. One
/// statement whatever it finds. A task to pick is leased for `lease` in it
/// (its due time moved past picking and packing), so run on the pool it is
/// claimed and committed at once and the picker holds no transaction while
/// it picks; a task to ship stays locked only as long as the caller's
/// transaction does, the one it is shipped in. With nothing due it tells how
/// long until something is (the not yet due task it locked is released with
/// the caller's transaction).
pub async fn claim_next_task<'c, E: PgExecutor<'c>>(conn: E, lease: Duration) -> Result<Claim, sqlx::Error> {
    let row = sqlx::query(
        "WITH next AS (
             SELECT t.pick_task_id, t.order_id, t.items, t.status, t.correlation_id, t.causation_id,
                    t.traceparent, t.tracestate,
                    EXTRACT(EPOCH FROM t.due_at - clock_timestamp())::float8 AS due_in
             FROM pick_tasks t WHERE t.status IN ('READY', 'PACKED')
             ORDER BY t.due_at LIMIT 1 FOR UPDATE OF t SKIP LOCKED),
         leased AS (
             UPDATE pick_tasks p SET due_at = clock_timestamp() + $1 * interval '1 millisecond'
             FROM next WHERE p.pick_task_id = next.pick_task_id AND next.status = 'READY' AND next.due_in <= 0
             RETURNING p.pick_task_id)
         SELECT next.pick_task_id, next.order_id, next.items, next.status, next.correlation_id,
                next.causation_id, next.traceparent, next.tracestate, next.due_in,
                (SELECT EXTRACT(EPOCH FROM min(o.due_at) - clock_timestamp())::float8 FROM pick_tasks o
                 WHERE o.status IN ('READY', 'PACKED') AND o.pick_task_id <> next.pick_task_id),
                (SELECT count(*) FROM leased)
         FROM next",
    )
    .bind(lease.as_millis() as f64)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(Claim::Empty);
    };
    let due_in: f64 = row.get(8);
    if due_in > 0.0 {
        return Ok(Claim::NotYet(Duration::from_secs_f64(due_in)));
    }
    let task = DueTask {
        pick_task_id: row.get(0),
        order_id: row.get(1),
        items: row.get::<sqlx::types::Json<Vec<TaskItem>>, _>(2).0,
        packed: row.get::<&str, _>(3) == TaskStatus::Packed.as_str(),
        correlation_id: row.get(4),
        causation_id: row.get(5),
        trace: TraceContext {
            traceparent: row.get(6),
            tracestate: row.get(7),
        },
    };
    let next_in: Option<f64> = row.get(9);
    debug_assert!(
        task.packed || row.get::<i64, _>(10) == 1,
        "a task to pick is leased"
    );
    Ok(Claim::Due {
        task,
        more: next_in.is_some_and(|s| s <= 0.0),
        next_in: next_in.map(|s| Duration::from_secs_f64(s.max(0.0))),
    })
}

/// Gives up the lease on task `pick_task_id` if it is still to be picked: it
/// is due at once (its picker was stopped in the middle of picking).
pub async fn hand_back_task(pool: &PgPool, pick_task_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE pick_tasks SET due_at = clock_timestamp() WHERE pick_task_id = $1 AND status = 'READY'",
    )
    .bind(pick_task_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Locks a leased task again to record its step; false when it is no
/// longer `status` (cancelled meanwhile, or worked by another picker after
/// the lease ran out).
pub async fn relock_task(
    conn: &mut PgConnection,
    pick_task_id: Uuid,
    status: TaskStatus,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("SELECT 1 FROM pick_tasks WHERE pick_task_id = $1 AND status = $2 FOR UPDATE")
            .bind(pick_task_id)
            .bind(status.as_str())
            .fetch_optional(conn)
            .await?
            .is_some(),
    )
}

/// Moves a task on to `status`, due in `due_in`, as the event that moved
/// it occurred at `at`; the task's next events are caused by `event_id`
/// and continue `traceparent`.
pub async fn advance_task(
    conn: &mut PgConnection,
    pick_task_id: Uuid,
    (status, at): (TaskStatus, DateTime<Utc>),
    due_in: Duration,
    event_id: &str,
    traceparent: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE pick_tasks SET status = $2, due_at = clock_timestamp() + $3 * interval '1 millisecond',
                causation_id = $4, traceparent = $5, updated_at = $6
         WHERE pick_task_id = $1",
    )
    .bind(pick_task_id)
    .bind(status.as_str())
    .bind(due_in.as_millis() as f64)
    .bind(event_id)
    .bind(traceparent)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Puts a task whose step was refused back where its order's stream says
/// it is. No event moved it: `updated_at` stays the time of the last that
/// did, as a rebuild makes it.
pub async fn requeue_task(
    conn: &mut PgConnection,
    pick_task_id: Uuid,
    status: TaskStatus,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE pick_tasks SET status = $2, due_at = now() WHERE pick_task_id = $1")
        .bind(pick_task_id)
        .bind(status.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// Open pick tasks per status, every open status counted (the backlog).
pub async fn backlog(pool: &PgPool) -> Result<Vec<(TaskStatus, i64)>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM pick_tasks WHERE status NOT IN ('SHIPPED', 'CANCELLED') GROUP BY status",
    )
    .fetch_all(pool)
    .await?;
    Ok(TaskStatus::OPEN
        .into_iter()
        .map(|status| {
            let n = rows
                .iter()
                .find(|(s, _)| s == status.as_str())
                .map_or(0, |(_, n)| *n);
            (status, n)
        })
        .collect())
}

/// An order's pick task as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickTask {
    pub pick_task_id: Uuid,
    /// One of [`TaskStatus`]'s names.
    #[schema(pattern = "^(WAITING_PAYMENT|READY|PACKED|SHIPPED|CANCELLED)$")]
    pub status: String,
    pub items: Vec<TaskItem>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The pick task of `order_id`, if the warehouse made one.
pub async fn pick_task(pool: &PgPool, order_id: Uuid) -> Result<Option<PickTask>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT pick_task_id, status, items, created_at, updated_at FROM pick_tasks WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| PickTask {
        pick_task_id: r.get(0),
        status: r.get(1),
        items: r.get::<sqlx::types::Json<Vec<TaskItem>>, _>(2).0,
        created_at: r.get(3),
        updated_at: r.get(4),
    }))
}
