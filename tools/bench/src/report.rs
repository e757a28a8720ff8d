//! The benchmark's report: a table on the terminal and the same as JSON.

use serde::Serialize;

use super::{limits::Limits, load::RunResult};

/// Kafka hops on the path from the 201 to OrderReadyForShipment on the
/// broker: OrderPlaced (order to payment), PaymentAuthorized (payment to
/// warehouse), OrderReadyForShipment (warehouse to its reader); each starts
/// with a commit.
pub const SAGA_HOPS: f64 = 3.0;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0.0);
        Self {
            cpu,
            cores: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
            memory_gib: kib / 1048576.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchStep {
    pub offered_per_s: f64,
    pub sustainable: bool,
    pub saga_p99_ms: f64,
    pub errors: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TracingCost {
    /// Orders per second of both runs (half the maximum).
    pub rate: f64,
    pub sampled_cpu_per_order: f64,
    /// At 10% sampling (`parentbased_traceidratio`, 0.1).
    pub tenth_cpu_per_order: f64,
    pub unsampled_cpu_per_order: f64,
    pub sampled_saga_p50_ms: f64,
    pub tenth_saga_p50_ms: f64,
    pub unsampled_saga_p50_ms: f64,
    /// 1 - unsampled / sampled CPU per order: the share of throughput a
    /// CPU-bound stack gives up to 100% sampling.
    pub throughput_cost: f64,
    /// The same for 10% sampling.
    pub tenth_throughput_cost: f64,
    pub errors: u64,
}

/// What the stack costs while nothing happens: every process's CPU over a
/// quiet window after the warm-up, in percent of one core.
#[derive(Debug, Clone, Serialize)]
pub struct Idle {
    pub seconds: f64,
    pub cpu_percent: std::collections::BTreeMap<String, f64>,
}

impl Idle {
    /// The broker's and the services' share together (PostgreSQL, the
    /// trace viewer and the load generator are not part of the stack's
    /// own idle cost, but shown).
    pub fn stack_percent(&self) -> f64 {
        self.cpu_percent
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "postgres" | "trace-viewer"))
            .map(|(_, p)| p)
            .sum()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    pub label: String,
    /// orders/s x transactions per order / commit rate at 16 clients.
    pub commit_budget_used: f64,
    /// saga p50 / (hops x (commit p50 at 1 client + broker round trip p50)).
    pub saga_over_floor: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub date: String,
    pub commit: String,
    pub machine: Machine,
    pub settings: serde_json::Value,
    pub limits: Limits,
    pub idle: Idle,
    pub search: Vec<SearchStep>,
    pub max_sustainable_per_s: f64,
    pub runs: Vec<RunResult>,
    pub ratios: Vec<Ratios>,
    pub tracing: Option<TracingCost>,
}

pub fn ratios(limits: &Limits, run: &RunResult) -> Ratios {
    let commit_rate = limits.pg(16).map(|p| p.commits_per_s).unwrap_or(f64::NAN);
    let commit_p50 = limits.pg(1).map(|p| p.latency.p50_ms).unwrap_or(f64::NAN);
    let floor = SAGA_HOPS * (commit_p50 + limits.broker.round_trip.p50_ms);
    Ratios {
        label: run.label.clone(),
        commit_budget_used: run.completed_per_s * run.transactions_per_order / commit_rate,
        saga_over_floor: run.saga.p50_ms / floor,
    }
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The report as the terminal shows it.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let l = &r.limits;
    s += &format!(
        "omnisaga bench  {}  commit {}\nmachine: {} x{} cores, {:.0} GiB, Linux {}\n",
        r.date, r.commit, r.machine.cpu, r.machine.cores, r.machine.memory_gib, r.machine.kernel
    );
    s += &format!("settings: {}\n\n", r.settings);
    s += "Limits of this machine, measured in this run\n";
    s += &format!(
        "  broker round trip, 1 in flight, acks=all   p50 {} ms  p99 {} ms\n",
        ms(l.broker.round_trip.p50_ms),
        ms(l.broker.round_trip.p99_ms)
    );
    s += &format!(
        "  broker produce rate ({} B, idempotent)     {:.0} records/s\n",
        l.broker.record_bytes, l.broker.max_produce_per_s
    );
    for p in &l.postgres {
        s += &format!(
            "  PostgreSQL saga step (inbox+event+outbox), {:>2} client{}  {:.0} commits/s  p50 {} ms  p99 {} ms\n",
            p.clients,
            if p.clients == 1 { " " } else { "s" },
            p.commits_per_s,
            ms(p.latency.p50_ms),
            ms(p.latency.p99_ms)
        );
    }
    s += &format!(
        "\nIdle, {:.0} s after the warm-up: broker and services {:.1}% of one core\n  ",
        r.idle.seconds,
        r.idle.stack_percent()
    );
    s += &r
        .idle
        .cpu_percent
        .iter()
        .map(|(n, p)| format!("{n} {p:.2}%"))
        .collect::<Vec<_>>()
        .join(", ");
    s += "\n\nMaximum sustainable order rate (no errors, every saga done, saga p99 under 1 s)\n  ";
    s += &r
        .search
        .iter()
        .map(|st| {
            format!(
                "{:.0}/s {}",
                st.offered_per_s,
                if st.sustainable { "ok" } else { "no" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    s += &format!("  =>  {:.0} orders/s\n\n", r.max_sustainable_per_s);
    s += "run              offered  done/s  201 p50  201 p99  saga p50    p95    p99    max  cpu s/order  tx/order  stmts/order  outbox max  lag max  errors\n";
    for run in &r.runs {
        s += &format!(
            "{:<16} {:>7.0} {:>7.0} {:>8} {:>8} {:>9} {:>6} {:>6} {:>6} {:>12.4} {:>9.1} {:>12} {:>11.0} {:>8.0} {:>7}\n",
            run.label,
            run.offered_per_s,
            run.completed_per_s,
            ms(run.http_201.p50_ms),
            ms(run.http_201.p99_ms),
            ms(run.saga.p50_ms),
            ms(run.saga.p95_ms),
            ms(run.saga.p99_ms),
            ms(run.saga.max_ms),
            run.cpu_seconds_per_order,
            run.transactions_per_order,
            run.statements_per_order
                .map(|n| format!("{n:.0}"))
                .unwrap_or_else(|| "-".into()),
            run.outbox_backlog_max,
            run.consumer_lag_max,
            run.errors + run.cancelled,
        );
    }
    s += "(latencies in ms, from each request's intended start; saga = to OrderReadyForShipment handed to the producer: its record timestamp)\n";
    if let Some(run) = r.runs.last() {
        s += &format!("\nRSS MiB at start -> end (max) of run {}\n  ", run.label);
        s += &run
            .rss_mib
            .iter()
            .map(|(n, m)| format!("{n} {:.0} -> {:.0} ({:.0})", m.start, m.end, m.max))
            .collect::<Vec<_>>()
            .join(", ");
        s += &format!(
            "\nLargest outbox backlog / consumer lag of run {} by service\n  ",
            run.label
        );
        s += &run
            .backlog_by_service
            .iter()
            .map(|(n, (o, l))| format!("{n} {o:.0}/{l:.0}"))
            .collect::<Vec<_>>()
            .join(", ");
        s += &format!("\nCPU seconds of run {} by component\n  ", run.label);
        s += &run
            .cpu_seconds
            .iter()
            .map(|(n, c)| format!("{n} {c:.1}"))
            .collect::<Vec<_>>()
            .join(", ");
        s += "\n";
    }
    // Where the half-load run's commits and statements went.
    if let Some(run) = r
        .runs
        .iter()
        .find(|run| run.label.starts_with("50%"))
        .or(r.runs.last())
    {
        s += &by_database(run);
    }
    s += "\nRatios (commit budget = done/s x tx/order / commit rate at 16 clients;\n        saga/floor = saga p50 / (3 hops x (commit p50 + broker round trip p50)))\n";
    for x in &r.ratios {
        s += &format!(
            "  {:<16} commit budget used {:>5.2}   saga/floor {:>6.1}\n",
            x.label, x.commit_budget_used, x.saga_over_floor
        );
    }
    if let Some(t) = &r.tracing {
        s += &format!(
            "\nTracing against none, at {:.0} orders/s each on restarted services:\n  \
             100% sampling {:.4} cpu s/order (saga p50 {} ms): throughput cost {:.1}%\n  \
             10% sampling  {:.4} cpu s/order (saga p50 {} ms): throughput cost {:.1}%\n  \
             none          {:.4} cpu s/order (saga p50 {} ms){}\n",
            t.rate,
            t.sampled_cpu_per_order,
            ms(t.sampled_saga_p50_ms),
            t.throughput_cost * 100.0,
            t.tenth_cpu_per_order,
            ms(t.tenth_saga_p50_ms),
            t.tenth_throughput_cost * 100.0,
            t.unsampled_cpu_per_order,
            ms(t.unsampled_saga_p50_ms),
            if t.errors > 0 {
                format!(" ({} errors)", t.errors)
            } else {
                String::new()
            }
        );
    }
    s
}

/// A run's commits and statements per order by service database, and each
/// database's most frequent statements.
fn by_database(run: &RunResult) -> String {
    let mut s = format!(
        "\nPer order by database, run {} (commits, statements; most frequent statements)\n",
        run.label
    );
    for (name, cost) in &run.by_database {
        s += &format!(
            "  {name:<14} {:>5.1} tx  {:>6.1} statements\n",
            cost.transactions_per_order, cost.statements_per_order
        );
        for (text, per_order) in &cost.top_statements {
            let text: String = text.chars().take(110).collect();
            s += &format!("      {per_order:>5.2}  {text}\n");
        }
    }
    s
}
