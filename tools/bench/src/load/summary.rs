//! The per-run report: what the follower, the sender and the sampler
//! collected, and what the run cost the stack, summed up as a [`RunResult`].

use std::{collections::BTreeMap, sync::atomic::Ordering};

use anyhow::Result;

use super::{
    follower::Tracker, sender::Answers, sender::Schedule, watch::Samples, DatabaseCost, RunOptions,
    RunResult, Target,
};
use crate::{probe::CpuSnapshot, Latency};

/// The stack's counters at one instant, a run's cost being the difference
/// of two: commits and statements in its databases, CPU time of its processes.
pub(super) struct Usage {
    transactions: i64,
    statements: Option<i64>,
    databases: Counters,
    cpu: CpuSnapshot,
}

/// Per database (a service's, named without the stack's prefix): its commits
/// and its statements by text.
type Counters = BTreeMap<String, (i64, BTreeMap<String, i64>)>;

impl Usage {
    /// Reads the databases' counters, then the processes' CPU times.
    pub(super) async fn take(target: &Target) -> Result<Self> {
        let databases = database_counters(target).await?;
        let transactions = databases.values().map(|(commits, _)| commits).sum();
        let statements = databases
            .values()
            .any(|(_, by_text)| !by_text.is_empty())
            .then(|| databases.values().flat_map(|(_, by_text)| by_text.values()).sum());
        Ok(Self {
            transactions,
            statements,
            databases,
            cpu: CpuSnapshot::take(&target.processes),
        })
    }

    /// What the stack used since `earlier`.
    pub(super) fn since(&self, earlier: &Self) -> Cost {
        let mut databases = BTreeMap::new();
        for (name, (commits, by_text)) in &self.databases {
            let (commits_before, texts_before) = earlier.databases.get(name).cloned().unwrap_or_default();
            let statements = by_text
                .iter()
                .map(|(text, calls)| (text.clone(), calls - texts_before.get(text).copied().unwrap_or(0)))
                .filter(|(_, calls)| *calls > 0)
                .collect();
            databases.insert(name.clone(), (commits - commits_before, statements));
        }
        Cost {
            cpu: self.cpu.since(&earlier.cpu),
            transactions: self.transactions - earlier.transactions,
            statements: match (earlier.statements, self.statements) {
                (Some(before), Some(after)) => Some(after - before),
                _ => None,
            },
            databases,
        }
    }
}

/// What a run cost the stack: CPU seconds per component, commits, and
/// statements when the server counts them, in all and per database.
pub(super) struct Cost {
    cpu: BTreeMap<String, f64>,
    transactions: i64,
    statements: Option<i64>,
    databases: Counters,
}

/// Commits so far in each of the stack's databases, and the statements they
/// ran by text (BEGIN and COMMIT included) when the server keeps
/// `pg_stat_statements` (`infra/postgres/omnisaga.conf` preloads it).
async fn database_counters(target: &Target) -> Result<Counters> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&format!("{}/postgres", target.pg_server)).await?;
    let pattern = format!("{}\\_%", target.db_prefix);
    let name = |datname: String| {
        datname
            .strip_prefix(&format!("{}_", target.db_prefix))
            .map(str::to_owned)
            .unwrap_or(datname)
    };
    let mut counters = Counters::new();
    let commits: Vec<(String, i64)> =
        sqlx::query_as("SELECT datname::text, xact_commit FROM pg_stat_database WHERE datname LIKE $1")
            .bind(&pattern)
            .fetch_all(&mut c)
            .await?;
    for (datname, commits) in commits {
        counters.entry(name(datname)).or_default().0 = commits;
    }
    if sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&mut c)
        .await
        .is_ok()
    {
        let statements: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT d.datname::text, s.query, sum(s.calls)::bigint FROM pg_stat_statements s
             JOIN pg_database d ON d.oid = s.dbid WHERE d.datname LIKE $1 GROUP BY 1, 2",
        )
        .bind(&pattern)
        .fetch_all(&mut c)
        .await
        .unwrap_or_default();
        for (datname, query, calls) in statements {
            *counters
                .entry(name(datname))
                .or_default()
                .1
                .entry(query)
                .or_default() += calls;
        }
    }
    c.close().await?;
    Ok(counters)
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
        by_database: by_database(&cost.databases, completed),
        outbox_backlog_max: outbox_max,
        consumer_lag_max: lag_max,
        backlog_by_service,
        rss_mib,
    }
}

/// Per database: commits and statements per finished order, and its most
/// frequent statements (text folded to one line) per order, most first.
fn by_database(databases: &Counters, completed: u64) -> BTreeMap<String, DatabaseCost> {
    let per_order = |n: i64| {
        if completed > 0 {
            n as f64 / completed as f64
        } else {
            0.0
        }
    };
    databases
        .iter()
        .map(|(name, (commits, by_text))| {
            let mut top: Vec<(String, f64)> = by_text
                .iter()
                .map(|(text, calls)| {
                    (
                        text.split_whitespace().collect::<Vec<_>>().join(" "),
                        per_order(*calls),
                    )
                })
                .collect();
            top.sort_by(|a, b| b.1.total_cmp(&a.1));
            top.truncate(TOP_STATEMENTS);
            let cost = DatabaseCost {
                transactions_per_order: per_order(*commits),
                statements_per_order: per_order(by_text.values().sum()),
                top_statements: top,
            };
            (name.clone(), cost)
        })
        .collect()
}

/// How many of a database's statements a run's report names.
const TOP_STATEMENTS: usize = 8;
