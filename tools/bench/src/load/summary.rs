//! The per-run report: what the follower, the sender and the sampler
//! collected, and what the run cost the stack, summed up as a [`RunResult`].

use std::{collections::BTreeMap, sync::atomic::Ordering};

use anyhow::Result;

use super::{
    follower::Tracker, sender::Answers, sender::Schedule, watch::Samples, RunOptions, RunResult, Target,
};
use crate::{probe::CpuSnapshot, Latency};

/// The stack's counters at one instant, a run's cost being the difference
/// of two: commits and statements in its databases, CPU time of its processes.
pub(super) struct Usage {
    transactions: i64,
    statements: Option<i64>,
    cpu: CpuSnapshot,
}

impl Usage {
    /// Reads the databases' counters, then the processes' CPU times.
    pub(super) async fn take(target: &Target) -> Result<Self> {
        let (transactions, statements) = database_counters(target).await?;
        Ok(Self {
            transactions,
            statements,
            cpu: CpuSnapshot::take(&target.processes),
        })
    }

    /// What the stack used since `earlier`.
    pub(super) fn since(&self, earlier: &Self) -> Cost {
        Cost {
            cpu: self.cpu.since(&earlier.cpu),
            transactions: self.transactions - earlier.transactions,
            statements: match (earlier.statements, self.statements) {
                (Some(before), Some(after)) => Some(after - before),
                _ => None,
            },
        }
    }
}

/// What a run cost the stack: CPU seconds per component, commits, and
/// statements when the server counts them.
pub(super) struct Cost {
    cpu: BTreeMap<String, f64>,
    transactions: i64,
    statements: Option<i64>,
}

/// Commits so far in the stack's databases, and the statements they ran
/// (BEGIN and COMMIT included) when the server keeps `pg_stat_statements`
/// (`infra/postgres/omnisaga.conf` preloads it).
async fn database_counters(target: &Target) -> Result<(i64, Option<i64>)> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&format!("{}/postgres", target.pg_server)).await?;
    let pattern = format!("{}\\_%", target.db_prefix);
    let commits: Option<i64> =
        sqlx::query_scalar("SELECT sum(xact_commit)::bigint FROM pg_stat_database WHERE datname LIKE $1")
            .bind(&pattern)
            .fetch_one(&mut c)
            .await?;
    let statements = match sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&mut c)
        .await
    {
        Ok(_) => sqlx::query_scalar::<_, Option<i64>>(
            "SELECT sum(s.calls)::bigint FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
             WHERE d.datname LIKE $1",
        )
        .bind(&pattern)
        .fetch_one(&mut c)
        .await
        .ok()
        .flatten(),
        Err(_) => None,
    };
    c.close().await?;
    Ok((commits.unwrap_or(0), statements))
}

/// The result of the run `options` asked for, sent on `schedule`: its sagas
/// as the follower tracked them, its answers, samples and cost.
pub(super) fn result(
    options: &RunOptions,
    schedule: Schedule,
    sagas: Tracker,
    answers: &Answers,
    samples: &Samples,
    cost: Cost,
) -> RunResult {
    let counters = &answers.counters;
    let completed = sagas.completions.len() as u64;
    let window_end = schedule.start + options.duration;
    let half = schedule.start + options.duration / 2;
    let steady = sagas
        .completions
        .iter()
        .filter(|&&c| c >= half && c < window_end)
        .count() as f64
        / (options.duration.as_secs_f64() / 2.0);
    let errors = counters.errors.load(Ordering::Relaxed) + sagas.pending.len() as u64;
    let mut error_samples = answers
        .error_samples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if !sagas.pending.is_empty() {
        error_samples.push(format!(
            "{} sagas did not reach OrderReadyForShipment within {:?} after the last order",
            sagas.pending.len(),
            options.drain
        ));
    }
    let cpu_total: f64 = cost.cpu.values().sum();
    let (outbox_max, lag_max) = *samples.maxima.lock().unwrap_or_else(|e| e.into_inner());
    let http_201 = Latency::of(&answers.http_201.lock().unwrap_or_else(|e| e.into_inner()));
    let rss_mib = samples.rss.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let backlog_by_service = samples
        .by_service
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    RunResult {
        label: options.label.clone(),
        offered_per_s: options.rate,
        seconds: options.duration.as_secs_f64(),
        orders: schedule.total,
        accepted: counters.accepted.load(Ordering::Relaxed),
        completed,
        cancelled: sagas.cancelled,
        errors,
        error_samples,
        completed_per_s: steady,
        http_201,
        saga: sagas.saga.as_ref().map(Latency::of).unwrap_or_default(),
        cpu_seconds_per_order: if completed > 0 {
            cpu_total / completed as f64
        } else {
            0.0
        },
        cpu_seconds: cost.cpu,
        transactions_per_order: if completed > 0 {
            cost.transactions as f64 / completed as f64
        } else {
            0.0
        },
        statements_per_order: match cost.statements {
            Some(statements) if completed > 0 => Some(statements as f64 / completed as f64),
            _ => None,
        },
        outbox_backlog_max: outbox_max,
        consumer_lag_max: lag_max,
        backlog_by_service,
        rss_mib,
    }
}
