//! A projection made again from its events, online ([`run`]).
//!
//! 1. Copies of the projection's tables are made, empty, in the schema
//!    `rebuild` (same columns, defaults and unique indexes; no checks and
//!    no foreign keys, so a fold may pass through states the live tables
//!    never show).
//! 2. The source is read in position order, a batch at a time, and each
//!    batch folded into the copies in a transaction of its own whose search
//!    path puts `rebuild` first. Nothing is locked: the service goes on.
//! 3. One transaction then takes the source in SHARE mode (appenders wait,
//!    readers do not), folds the events the reading missed (appended since,
//!    or committed after a later position was read), and compares the
//!    copies with the live tables ([`Mode::Verify`]) or merges them in
//!    ([`Mode::Rebuild`]: only rows that differ are written, so readers see
//!    the live rows until the commit and then the rebuilt ones).
//!
//! The copies are dropped afterwards; a run cut short leaves the live
//! tables as they were, and the next run starts over.

mod compare;

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::Instant,
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Row, Transaction};

pub use compare::TableReport;

use crate::es::{
    projection::{Projection, Recorded, Source},
    store,
};

/// Events folded per transaction while the service goes on.
const BATCH: i64 = 1000;

/// What a run does once the copies are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Compare the copies with the live tables; change nothing.
    Verify,
    /// Merge the copies into the live tables.
    Rebuild,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Verify => "verify",
            Mode::Rebuild => "rebuild",
        }
    }
}

/// How far a run is, for whoever watches it.
#[derive(Debug, Default)]
pub struct Progress {
    /// Events folded so far.
    pub done: AtomicI64,
    /// Events the source held when the run began (more may come).
    pub total: AtomicI64,
}

/// What a run found, and did, for one projection.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectionReport {
    pub projection: String,
    pub mode: Mode,
    /// Events folded.
    pub events: i64,
    pub tables: Vec<TableReport>,
    pub seconds: f64,
    /// How long appenders waited on the final pass (the source's lock).
    pub locked_seconds: f64,
}

impl ProjectionReport {
    /// Whether the live tables held exactly what the events give (before
    /// a merge, for [`Mode::Rebuild`]).
    pub fn identical(&self) -> bool {
        self.tables.iter().all(TableReport::identical)
    }
}

/// Makes `projection` again from its events and compares or merges
/// ([`Mode`]). One run at a time per projection is the caller's to ensure
/// (the admin route allows one per service).
pub async fn run(
    pool: &PgPool,
    projection: &dyn Projection,
    mode: Mode,
    progress: &Progress,
) -> Result<ProjectionReport> {
    let started = Instant::now();
    let source = projection.source();
    let mut conn = pool.acquire().await?;
    make_copies(&mut conn, projection).await?;
    let outcome = fold_and_finish(&mut conn, projection, source, mode, progress, started).await;
    // The copies go whatever happened; a failure to drop them is not the run's.
    if let Err(e) = drop_copies(&mut conn, projection).await {
        tracing::warn!(error = %e, projection = projection.name(), "a rebuild's copies were not dropped");
    }
    outcome
}

async fn fold_and_finish(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    source: Source,
    mode: Mode,
    progress: &Progress,
    started: Instant,
) -> Result<ProjectionReport> {
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {} WHERE {} IS NOT NULL",
        source.table, source.envelope
    ))
    .fetch_one(&mut *conn)
    .await?;
    progress.total.store(total, Ordering::Relaxed);

    // Pass 1, online: every event there is, a batch per transaction.
    let mut seen = Seen::default();
    loop {
        let mut tx = begin_folding(conn).await?;
        let batch = read(&mut tx, source, Range::After(seen.last)).await?;
        if batch.is_empty() {
            break;
        }
        projection.apply(&mut tx, &batch).await?;
        tx.commit().await?;
        seen.add(&batch);
        progress.done.fetch_add(batch.len() as i64, Ordering::Relaxed);
    }

    // Pass 2: appenders wait while what they appended meanwhile is folded
    // and the copies are compared or merged.
    let mut tx = begin_folding(conn).await?;
    sqlx::query("SET LOCAL lock_timeout = '10s'")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("LOCK TABLE public.{} IN SHARE MODE", source.table))
        .execute(&mut *tx)
        .await
        .context("the event store stayed busy: no moment to finish the rebuild in")?;
    let locked = Instant::now();
    let late = read(&mut tx, source, Range::Missed(seen.last, &seen.holes)).await?;
    if !late.is_empty() {
        projection.apply(&mut tx, &late).await?;
    }
    progress.done.fetch_add(late.len() as i64, Ordering::Relaxed);
    sqlx::query("SET LOCAL search_path TO public")
        .execute(&mut *tx)
        .await?;
    let mut tables = Vec::new();
    for table in projection.tables() {
        tables.push(compare::compare(&mut tx, table).await?);
    }
    if mode == Mode::Rebuild {
        compare::merge(&mut tx, projection.tables(), &mut tables).await?;
    }
    tx.commit().await?;
    Ok(ProjectionReport {
        projection: projection.name().to_owned(),
        mode,
        events: seen.count + late.len() as i64,
        tables,
        seconds: started.elapsed().as_secs_f64(),
        locked_seconds: locked.elapsed().as_secs_f64(),
    })
}

/// The positions pass 1 folded: the last, how many, and the ones below it
/// it did not see (rolled back, or not committed yet when read).
#[derive(Default)]
struct Seen {
    last: i64,
    count: i64,
    holes: Vec<i64>,
}

impl Seen {
    fn add(&mut self, batch: &[Recorded]) {
        for event in batch {
            self.holes.extend(self.last + 1..event.position);
            self.last = event.position;
        }
        self.count += batch.len() as i64;
    }
}

/// A transaction on `conn` in which the projection's unqualified tables
/// are its copies. Its statements may take long on a large store.
async fn begin_folding(conn: &mut PgConnection) -> Result<Transaction<'_, Postgres>> {
    let mut tx = conn.begin().await?;
    sqlx::query("SET LOCAL search_path TO rebuild, public")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SET LOCAL statement_timeout = '10min'")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Which of the source's events to read.
enum Range<'a> {
    /// The next batch after this position.
    After(i64),
    /// Every event after this position, and those at these (the holes).
    Missed(i64, &'a [i64]),
}

/// The source's events in `range`, in position order, decoded and upcast.
async fn read(conn: &mut PgConnection, source: Source, range: Range<'_>) -> Result<Vec<Recorded>> {
    let Source {
        table,
        position: p,
        envelope: e,
    } = source;
    let select = format!("SELECT {p}, {e} FROM public.{table} WHERE {e} IS NOT NULL");
    let rows = match range {
        Range::After(after) => {
            sqlx::query(&format!("{select} AND {p} > $1 ORDER BY {p} LIMIT $2"))
                .bind(after)
                .bind(BATCH)
                .fetch_all(&mut *conn)
                .await?
        }
        Range::Missed(after, holes) => {
            sqlx::query(&format!("{select} AND ({p} > $1 OR {p} = ANY($2)) ORDER BY {p}"))
                .bind(after)
                .bind(holes)
                .fetch_all(&mut *conn)
                .await?
        }
    };
    rows.iter()
        .map(|row| {
            let position: i64 = row.get(0);
            let stored = store::decode(position, row.get::<&[u8], _>(1))?;
            Ok(Recorded {
                position,
                envelope: stored.envelope,
            })
        })
        .collect()
}

async fn make_copies(conn: &mut PgConnection, projection: &dyn Projection) -> Result<()> {
    drop_copies(conn, projection).await?;
    for table in projection.tables() {
        sqlx::query(&format!(
            "CREATE TABLE rebuild.{t} (LIKE public.{t} INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING INDEXES)",
            t = table.name
        ))
        .execute(&mut *conn)
        .await
        .with_context(|| format!("Failed to make a copy of {} to rebuild", table.name))?;
    }
    Ok(())
}

async fn drop_copies(conn: &mut PgConnection, projection: &dyn Projection) -> Result<()> {
    for table in projection.tables() {
        sqlx::query(&format!("DROP TABLE IF EXISTS rebuild.{}", table.name))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
