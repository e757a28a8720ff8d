//! `make chaos` and `make soak`: the fault suite against a stack of its own.
//! Places orders at `--rate` per second while it injects `--faults` one
//! after another (`--gap` seconds of load between them), around and around
//! for `--minutes` when given (a soak), then waits until the stack is quiet
//! and checks every invariant. Prints the report and writes it as JSON.
//! With `--each` every fault is a test of its own on the same stack: load,
//! that fault, quiet, every invariant; one report per fault.
//!
//! Every random choice of the fault schedule comes from a seed, printed at
//! the start and in the report: `--seed N` or `CHAOS_SEED=N` replays it.
//!
//! `--brokers 3` runs a cluster of three Kafka nodes (topics replicated 3
//! times, min.insync.replicas 2) instead of one behind the network proxy.
//!
//! Usage: omnisaga-chaos [--faults F,F,...] [--each] [--rate N] [--gap S]
//!        [--minutes M] [--settle S] [--seed N] [--brokers N] [--out FILE]
//! Faults: kill-each, kill:SERVICE, random-kills:SECONDS,
//!         pause:SERVICE:SECONDS, broker, net-delay:SECONDS:MS,
//!         net-stall:SECONDS, net-cut, db-connections, provider:SECONDS,
//!         poison, dlq-verbs, overload:SECONDS, pg-restart (the machine's PostgreSQL:
//!         not while other tests run), pg-partition:SERVICE:SECONDS,
//!         pg-partition-lock:SERVICE:SECONDS, pg-delay:SECONDS:MS; with --brokers 3: leader-kills:N,
//!         leader-pause:SECONDS (and not the net-* faults)

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{bail, Context, Result};
use omnisaga_chaos::{self as chaos, Fault, LoadOptions, RunOptions};
use omnisaga_stack::{repo_root, Stack};

const USAGE: &str =
    "usage: omnisaga-chaos [--faults F,F,...] [--each] [--rate N] [--gap S] [--minutes M] [--settle S] [--seed N] [--brokers N] [--out FILE]
faults: kill-each, kill:SERVICE, random-kills:SECONDS, pause:SERVICE:SECONDS, broker, net-delay:SECONDS:MS,
        net-stall:SECONDS, net-cut, db-connections, provider:SECONDS, poison, dlq-verbs,\n        overload:SECONDS, pg-restart,
        pg-partition:SERVICE:SECONDS, pg-partition-lock:SERVICE:SECONDS, pg-delay:SECONDS:MS, leader-kills:N, leader-pause:SECONDS (with --brokers 3)";

/// Every fault once: the suite `make chaos` runs.
const ALL: &str = "kill-each,random-kills:60,pause:payment:15,broker,net-delay:30:200,net-stall:15,net-cut,\
                   db-connections,provider:120,poison,dlq-verbs,overload:20";

/// Every fault once on a cluster of three brokers (`--brokers 3`).
const ALL_CLUSTER: &str =
    "kill-each,leader-kills:3,leader-pause:15,broker,db-connections,provider:60,poison,overload:20";

fn parse_args() -> Result<(RunOptions, PathBuf, bool, usize)> {
    let mut options = RunOptions {
        load: LoadOptions::default(),
        faults: Vec::new(),
        repeat_for: None,
        lead_in: Duration::from_secs(15),
        gap: Duration::from_secs(5),
        settle: Duration::from_secs(300),
        seed: chaos::seed_from_env()?,
    };
    let mut faults = None;
    let mut each = false;
    let mut brokers = 1;
    let mut out = repo_root()?.join("target/chaos/report.json");
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let number =
            |v: String| -> Result<f64> { v.parse().with_context(|| format!("{v} is no number\n{USAGE}")) };
        match flag.as_str() {
            "--faults" => faults = Some(value()?),
            "--each" => each = true,
            "--rate" => options.load.rate = number(value()?)?,
            "--gap" => options.gap = Duration::from_secs_f64(number(value()?)?),
            "--minutes" => options.repeat_for = Some(Duration::from_secs_f64(number(value()?)? * 60.0)),
            "--settle" => options.settle = Duration::from_secs_f64(number(value()?)?),
            "--seed" => options.seed = chaos::parse_seed(Some(&value()?))?,
            "--out" => out = PathBuf::from(value()?),
            "--brokers" => {
                brokers = match value()?.as_str() {
                    "1" => 1,
                    "3" => 3,
                    other => bail!("--brokers {other}: 1 or 3\n{USAGE}"),
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    let faults = faults.unwrap_or_else(|| if brokers > 1 { ALL_CLUSTER } else { ALL }.to_owned());
    for f in faults.split(',').filter(|f| !f.trim().is_empty()) {
        options.faults.extend(Fault::parse(f.trim())?);
    }
    anyhow::ensure!(
        !(each && options.repeat_for.is_some()),
        "--each runs every fault once: not with --minutes\n{USAGE}"
    );
    let network = |f: &Fault| {
        matches!(
            f,
            Fault::NetworkDelay(..) | Fault::NetworkStall(_) | Fault::NetworkCut
        )
    };
    let cluster = |f: &Fault| matches!(f, Fault::KillPartitionLeader(_) | Fault::PausePartitionLeader(_));
    anyhow::ensure!(
        brokers == 1 || !options.faults.iter().any(network),
        "the net-* faults need one broker behind the proxy: not with --brokers {brokers}\n{USAGE}"
    );
    anyhow::ensure!(
        brokers > 1 || !options.faults.iter().any(cluster),
        "leader-kills and leader-pause need a cluster: --brokers 3\n{USAGE}"
    );
    Ok((options, out, each, brokers))
}

async fn run() -> Result<bool> {
    let (options, out, each, brokers) = parse_args()?;
    eprintln!(
        "[chaos] seed {} (CHAOS_SEED={} replays it); starting a stack of its own; {} faults{}, {} orders/s{}",
        options.seed,
        options.seed,
        options.faults.len(),
        if each { ", each a test of its own" } else { "" },
        options.load.rate,
        options
            .repeat_for
            .map(|d| format!(", repeated for {} min", d.as_secs() / 60))
            .unwrap_or_default()
    );
    let mut stack = Stack::start(chaos::stack_options_for(&options.faults, brokers)).await?;
    if each {
        return run_each(stack, &options, &out).await;
    }
    let report = chaos::run(&mut stack, &options).await;
    let passed = report.as_ref().is_ok_and(|r| r.passed);
    stack.finish(passed).await?;
    let report = report?;
    report.write(&out)?;
    println!("{}", report.summary());
    println!("report: {}", out.display());
    Ok(report.passed)
}

/// Every fault a run of its own on `stack`, one after another: its report
/// printed as it ends, all of them written to `out` as a JSON array, and a
/// table of verdicts at the end.
async fn run_each(mut stack: Stack, options: &RunOptions, out: &std::path::Path) -> Result<bool> {
    let mut reports = Vec::new();
    let mut verdicts = Vec::new();
    for fault in &options.faults {
        eprintln!("[chaos] ---- {} ----", fault.name());
        let one = RunOptions {
            faults: vec![fault.clone()],
            lead_in: Duration::from_secs(10),
            ..options.clone()
        };
        let report = chaos::run(&mut stack, &one).await;
        let report = match report {
            Ok(report) => report,
            Err(e) => {
                stack.finish(false).await?;
                return Err(e.context(format!("the run of {}", fault.name())));
            }
        };
        println!("{}\n{}", fault.name(), report.summary());
        verdicts.push((fault.name(), report.passed, report.accepted, report.quiet_after));
        reports.push(report);
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(out, serde_json::to_vec_pretty(&reports)?)?;
    }
    let passed = reports.iter().all(|r| r.passed);
    stack.finish(passed).await?;
    println!("fault                                                   verdict  orders  quiet after");
    for (fault, ok, accepted, quiet) in &verdicts {
        println!(
            "{fault:<55} {:<8} {accepted:>6}  {}",
            if *ok { "ok" } else { "FAILED" },
            quiet
                .map(|s| format!("{s:.1} s"))
                .unwrap_or_else(|| "not quiet".into())
        );
    }
    println!("reports: {}", out.display());
    Ok(passed)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("omnisaga-chaos: {e:#}");
            ExitCode::FAILURE
        }
    }
}
