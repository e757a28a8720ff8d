//! `/v1/admin/rebuilds`: the service's read models made again from its
//! events ([`crate::es::rebuild`]), as a run an operator starts and
//! watches (`omnisaga rebuild <service>` calls it). A run goes on in the
//! background of the instance that took it; its progress and report are
//! kept in the `rebuilds` table, so any instance answers for it. One runs
//! at a time per service.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::IntoResponse,
    routing::{get, post},
    Json, Router,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};

use crate::{
    edge::http::{ApiError, ApiJson},
    es::{
        projection::Projection,
        rebuild::{self, Mode, Progress, ProjectionReport},
    },
};

/// How often a run records its progress; one silent for [`STALE`] is
/// taken as abandoned (its instance stopped).
const BEAT: Duration = Duration::from_secs(1);
const STALE: &str = "30 seconds";

#[derive(Clone)]
pub(crate) struct RebuildState {
    pool: PgPool,
    projections: Arc<Vec<Arc<dyn Projection>>>,
}

/// `/v1/admin/rebuilds`: start a run, follow one.
pub fn routes(pool: PgPool, projections: Vec<Arc<dyn Projection>>) -> Router {
    Router::new()
        .route("/v1/admin/rebuilds", post(start))
        .route("/v1/admin/rebuilds/{id}", get(show))
        .with_state(RebuildState {
            pool,
            projections: Arc::new(projections),
        })
}

/// What to make again, and what to do with it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RebuildRequest {
    /// `verify` compares and changes nothing; `rebuild` merges what the
    /// events give into the live tables.
    mode: Mode,
    /// Only these projections [default: every one the service keeps].
    projections: Option<Vec<String>>,
}

/// A run: how far it is, and once it ended, what it found and did.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rebuild {
    pub id: i64,
    pub mode: Mode,
    pub projections: Vec<String>,
    /// `running`, `finished`, `failed` (see `error`) or `abandoned` (its
    /// instance stopped; the live tables are as they were).
    pub status: String,
    /// Events folded so far, over every projection.
    pub events_done: i64,
    /// Events to fold: the source's count for each projection when it began.
    pub events_total: i64,
    /// One per projection, once the run finished.
    pub report: Option<Vec<ProjectionReport>>,
    /// Set when finished: whether every table was identical to what the
    /// events give (before the merge, for `rebuild`).
    pub identical: Option<bool>,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Starts a run.
#[utoipa::path(post, path = "/v1/admin/rebuilds", tag = "operations", request_body = RebuildRequest,
    security(("bearer" = ["admin"])),
    responses(
        (status = 202, description = "the run began; follow it at the Location given", body = Rebuild),
        (status = 409, description = "rebuild_running: another run of this service is under way", body = crate::edge::http::ErrorBody),
        (status = 422, description = "validation_failed: an unknown mode, projection or field; nothing began", body = crate::edge::http::ErrorBody),
    ))]
pub(crate) async fn start(
    State(s): State<RebuildState>,
    ApiJson(req): ApiJson<RebuildRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let chosen = choose(&s.projections, req.projections.as_deref())?;
    let names: Vec<&str> = chosen.iter().map(|p| p.name()).collect();
    sqlx::query(&format!(
        "UPDATE rebuilds SET status = 'abandoned', finished_at = now()
         WHERE status = 'running' AND heartbeat_at < now() - interval '{STALE}'"
    ))
    .execute(&s.pool)
    .await?;
    let id: i64 =
        match sqlx::query_scalar("INSERT INTO rebuilds (mode, projections) VALUES ($1, $2) RETURNING id")
            .bind(req.mode.as_str())
            .bind(&names)
            .fetch_one(&s.pool)
            .await
        {
            Ok(id) => id,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(ApiError::conflict(
                    "rebuild_running",
                    "another rebuild of this service is under way; follow it or wait for it to end",
                ))
            }
            Err(e) => return Err(e.into()),
        };
    tokio::spawn(go(s.pool.clone(), id, req.mode, chosen));
    let run = load(&s.pool, id)
        .await?
        .ok_or_else(|| ApiError::internal("a run just begun vanished"))?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/v1/admin/rebuilds/{id}"))],
        Json(run),
    ))
}

/// The projections `asked` names (every one when `None`), or why not.
fn choose(
    all: &[Arc<dyn Projection>],
    asked: Option<&[String]>,
) -> Result<Vec<Arc<dyn Projection>>, ApiError> {
    let Some(asked) = asked else {
        return Ok(all.to_vec());
    };
    let known: Vec<&str> = all.iter().map(|p| p.name()).collect();
    if asked.is_empty() {
        return Err(ApiError::validation(format!(
            "projections: name one or more of {}, or leave it out for all",
            known.join(", ")
        )));
    }
    asked
        .iter()
        .map(|name| {
            all.iter().find(|p| p.name() == name).cloned().ok_or_else(|| {
                ApiError::validation(format!(
                    "projections: this service keeps no projection {name:?}; it keeps {}",
                    known.join(", ")
                ))
            })
        })
        .collect()
}

/// Runs each projection in turn, recording progress and then the outcome.
async fn go(pool: PgPool, id: i64, mode: Mode, projections: Vec<Arc<dyn Projection>>) {
    let progress = Arc::new(Progress::default());
    let beat = tokio::spawn(heartbeat(pool.clone(), id, progress.clone()));
    let mut reports = Vec::new();
    let mut failure = None;
    let mut before = (0, 0);
    for projection in &projections {
        let one = Progress::default();
        let run = rebuild::run(&pool, projection.as_ref(), mode, &one);
        // The run's own counters, added to those of the projections before it.
        let watch = async {
            loop {
                tokio::time::sleep(BEAT / 2).await;
                record(&progress, &before, &one);
            }
        };
        let outcome = tokio::select! {
            outcome = run => outcome,
            _ = watch => unreachable!("the watch never ends"),
        };
        record(&progress, &before, &one);
        before = (
            progress.done.load(std::sync::atomic::Ordering::Relaxed),
            progress.total.load(std::sync::atomic::Ordering::Relaxed),
        );
        match outcome {
            Ok(report) => reports.push(report),
            Err(e) => {
                failure = Some(format!("{}: {e:#}", projection.name()));
                break;
            }
        }
    }
    beat.abort();
    let identical = failure
        .is_none()
        .then(|| reports.iter().all(ProjectionReport::identical));
    let report = serde_json::to_value(&reports).ok();
    let ended = sqlx::query(
        "UPDATE rebuilds SET status = $2, report = $3, identical = $4, error = $5,
                events_done = $6, events_total = $7, finished_at = now(), heartbeat_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(if failure.is_some() { "failed" } else { "finished" })
    .bind(report)
    .bind(identical)
    .bind(&failure)
    .bind(progress.done.load(std::sync::atomic::Ordering::Relaxed))
    .bind(progress.total.load(std::sync::atomic::Ordering::Relaxed))
    .execute(&pool)
    .await;
    match (ended, failure) {
        (Err(e), _) => tracing::error!(error = %e, rebuild = id, "a rebuild's outcome was not recorded"),
        (Ok(_), Some(why)) => tracing::error!(rebuild = id, error = %why, "a rebuild failed"),
        (Ok(_), None) => tracing::info!(
            rebuild = id,
            mode = mode.as_str(),
            ?identical,
            "a rebuild finished"
        ),
    }
}

fn record(all: &Progress, before: &(i64, i64), one: &Progress) {
    use std::sync::atomic::Ordering::Relaxed;
    all.done.store(before.0 + one.done.load(Relaxed), Relaxed);
    all.total.store(before.1 + one.total.load(Relaxed), Relaxed);
}

/// Records the run's progress every [`BEAT`] until aborted.
async fn heartbeat(pool: PgPool, id: i64, progress: Arc<Progress>) {
    use std::sync::atomic::Ordering::Relaxed;
    loop {
        tokio::time::sleep(BEAT).await;
        let beat = sqlx::query(
            "UPDATE rebuilds SET events_done = $2, events_total = $3, heartbeat_at = now()
             WHERE id = $1 AND status = 'running'",
        )
        .bind(id)
        .bind(progress.done.load(Relaxed))
        .bind(progress.total.load(Relaxed))
        .execute(&pool)
        .await;
        if let Err(e) = beat {
            tracing::warn!(error = %e, rebuild = id, "a rebuild's progress was not recorded");
        }
    }
}

/// A run, how far it is and what it found.
#[utoipa::path(get, path = "/v1/admin/rebuilds/{id}", tag = "operations",
    security(("bearer" = ["admin"])),
    params(("id" = i64, Path, description = "the run's id, from the Location `POST /v1/admin/rebuilds` gave")),
    responses(
        (status = 200, description = "the run", body = Rebuild),
        (status = 404, description = "not_found: no run has this id", body = crate::edge::http::ErrorBody),
    ))]
pub(crate) async fn show(
    State(s): State<RebuildState>,
    Path(id): Path<i64>,
) -> Result<Json<Rebuild>, ApiError> {
    load(&s.pool, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no rebuild {id}")))
}

async fn load(pool: &PgPool, id: i64) -> Result<Option<Rebuild>, ApiError> {
    let row = sqlx::query(&format!(
        "SELECT id, mode, projections,
                CASE WHEN status = 'running' AND heartbeat_at < now() - interval '{STALE}'
                     THEN 'abandoned' ELSE status END,
                events_done, events_total, report, identical, error, started_at, finished_at
         FROM rebuilds WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mode = match row.get::<&str, _>(1) {
        "verify" => Mode::Verify,
        _ => Mode::Rebuild,
    };
    let report: Option<serde_json::Value> = row.get(6);
    Ok(Some(Rebuild {
        id: row.get(0),
        mode,
        projections: row.get(2),
        status: row.get(3),
        events_done: row.get(4),
        events_total: row.get(5),
        report: report
            .map(serde_json::from_value)
            .transpose()
            .map_err(ApiError::internal)?,
        identical: row.get(7),
        error: row.get(8),
        started_at: row.get(9),
        finished_at: row.get(10),
    }))
}
