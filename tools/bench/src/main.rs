//! `make bench` / `make bench-quick`: measures the machine's limits, finds
//! the stack's maximum sustainable order rate, runs at shares of it and
//! prints the table (JSON beside it in target/bench/).
//!
//! Usage: omnisaga-bench [--quick] [--duration S] [--search-seconds S] [--idle-seconds S]
//!        [--max-rate N] [--shares 25,50,80,100] [--instances N | --instances 1,2,3]
//!        [--tracing-cost | --no-tracing-cost] [--perf] [--env [SERVICE:]KEY=VALUE]... [--out DIR]
//!
//! `--instances N` runs every service as N instances (behind balancers, in
//! one consumer group each). A list compares them instead: a stack of its
//! own per count, each searched for its maximum sustainable rate and run
//! at one common rate (half the first count's maximum), side by side.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use anyhow::{bail, Context, Result};
use omnisaga_bench::{
    limits::{self, LimitOptions, Limits},
    load::{self, Follower, RunOptions, Target},
    perf,
    probe::CpuSnapshot,
    report::{self, Idle, Machine, Report, SearchStep, TracingCost},
};
use omnisaga_stack::{Broker, Stack, StackOptions, SERVICES};

struct Args {
    quick: bool,
    duration: f64,
    search_seconds: f64,
    /// The quiet window over which the idle stack's CPU is measured.
    idle_seconds: f64,
    max_rate: Option<f64>,
    shares: Vec<f64>,
    tracing_cost: bool,
    /// Sample every CPU with `perf` during each run at a share.
    perf: bool,
    /// Instances of every service; several: the scaling comparison.
    instances: Vec<usize>,
    /// Extra environment as (service or "*", key, value), e.g. to compare settings.
    env: Vec<(String, String, String)>,
    out: PathBuf,
}

const USAGE: &str =
    "usage: omnisaga-bench [--quick] [--duration S] [--search-seconds S] [--idle-seconds S] [--max-rate N] \
                     [--shares 25,50,80,100] [--instances N|--instances 1,2,3] [--tracing-cost|--no-tracing-cost] [--perf] \
                     [--env [SERVICE:]KEY=VALUE]... [--out DIR]";

fn parse_args() -> Result<Args> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let quick = raw.iter().any(|a| a == "--quick");
    let mut args = Args {
        quick,
        duration: if quick { 4.0 } else { 60.0 },
        // Long enough for a backlog at nearly full cores to show in the saga's p99.
        search_seconds: if quick { 3.0 } else { 30.0 },
        idle_seconds: if quick { 5.0 } else { 30.0 },
        max_rate: None,
        shares: vec![25.0, 50.0, 80.0, 100.0],
        tracing_cost: !quick,
        perf: false,
        instances: vec![1],
        env: Vec::new(),
        out: PathBuf::from("target/bench"),
    };
    let mut it = raw.into_iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value\n{USAGE}"));
        let number = |v: String, name: &str| -> Result<f64> {
            match v.parse::<f64>() {
                Ok(n) if n > 0.0 && n.is_finite() => Ok(n),
                _ => bail!("{name} must be a positive number, got {v:?}"),
            }
        };
        match a.as_str() {
            "--quick" => {}
            "--duration" => args.duration = number(value()?, "--duration")?,
            "--search-seconds" => args.search_seconds = number(value()?, "--search-seconds")?,
            "--idle-seconds" => args.idle_seconds = number(value()?, "--idle-seconds")?,
            "--max-rate" => args.max_rate = Some(number(value()?, "--max-rate")?),
            "--shares" => {
                args.shares = value()?
                    .split(',')
                    .map(|s| number(s.trim().to_owned(), "--shares"))
                    .collect::<Result<_>>()?
            }
            "--instances" => {
                let list = value()?;
                args.instances = list
                    .split(',')
                    .map(|n| match n.trim().parse::<usize>() {
                        Ok(n) if (1..=6).contains(&n) => Ok(n),
                        _ => {
                            bail!("--instances takes counts from 1 to 6 (the topics' partitions), got {n:?}")
                        }
                    })
                    .collect::<Result<_>>()?;
            }
            "--tracing-cost" => args.tracing_cost = true,
            "--no-tracing-cost" => args.tracing_cost = false,
            "--perf" => args.perf = true,
            "--out" => args.out = PathBuf::from(value()?),
            "--env" => {
                let kv = value()?;
                let (k, v) = kv
                    .split_once('=')
                    .with_context(|| format!("--env takes [SERVICE:]KEY=VALUE, got {kv:?}"))?;
                let (service, k) = k.split_once(':').unwrap_or(("*", k));
                if service != "*" && !SERVICES.iter().any(|(name, _)| *name == service) {
                    bail!("--env {kv:?}: {service:?} is not a service");
                }
                args.env.push((service.to_owned(), k.to_owned(), v.to_owned()));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(args)
}

fn git(args: &[&str]) -> String {
    std::process::Command::new("git")
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn target_of(stack: &Stack, prefix: &str) -> Target {
    let mut admin = reqwest::header::HeaderMap::new();
    let token = stack.token("bench-operator", &omnisaga_stack::OPERATOR_SCOPES);
    admin.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}")
            .parse()
            .expect("a token is a header value"),
    );
    Target {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .default_headers(admin)
            .build()
            .expect("an HTTP client builds"),
        order_url: stack.url("order"),
        // 1000 customers, each placing every 1000th order.
        customer_tokens: std::sync::Arc::new(
            (0..1000)
                .map(|i| stack.customer_token(&format!("bench-{i}")))
                .collect(),
        ),
        // Every instance's own metrics, not one behind its balancer.
        service_urls: stack.services.iter().map(|s| s.url.clone()).collect(),
        service_names: stack.services.iter().map(|s| s.label()).collect(),
        processes: stack.pids(),
        pg_server: omnisaga_stack::pg_server(),
        db_prefix: prefix.to_owned(),
    }
}

/// CPU of every process over `seconds` with no load, once the stack is
/// quiet (outbox and consumers caught up).
async fn measure_idle(target: &Target, seconds: f64) -> Result<Idle> {
    load::wait_idle(target, Duration::from_secs(60)).await?;
    eprintln!("measuring the idle stack's CPU for {seconds:.0} s");
    let before = CpuSnapshot::take(&target.processes);
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let used = CpuSnapshot::take(&target.processes).since(&before);
    Ok(Idle {
        seconds: elapsed,
        cpu_percent: used
            .into_iter()
            .map(|(name, cpu)| (name, cpu / elapsed * 100.0))
            .collect(),
    })
}

async fn restart_services(stack: &mut Stack) -> Result<()> {
    for (name, _) in SERVICES.iter().rev() {
        stack.stop_service(name).await?;
    }
    for (name, _) in SERVICES {
        stack.start_service(name).await?;
    }
    Ok(())
}

/// A bench stack in `dir`: fresh databases, its own broker, simulated
/// delays at zero (the bench measures the software, not the sleeps), and
/// `instances` of every service.
fn stack_options(args: &Args, dir: &std::path::Path, prefix: &str, instances: usize) -> Result<StackOptions> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let options = StackOptions {
        dir: std::path::absolute(dir)?,
        db_prefix: prefix.into(),
        fresh_databases: true,
        // A broker of its own, durable like the deployed one, measured alone.
        broker: Broker::Own,
        topic_prefix: "omnisaga.".into(),
        fixed_ports: false,
        env: BTreeMap::new(),
        instances: SERVICES
            .iter()
            .map(|(n, _)| ((*n).to_owned(), instances))
            .collect(),
        brokers: 1,
        database_proxies: false,
        webhook_sink: false,
        balance_on_readiness: false,
    }
    .set_env("warehouse", "WAREHOUSE_PICK_MS", "0")
    .set_env("warehouse", "WAREHOUSE_PACK_MS", "0")
    .set_env("warehouse", "WAREHOUSE_SHIP_MS", "0")
    .set_env("payment", "PAYMENT_PROVIDER_LATENCY_MS", "0");
    Ok(args.env.iter().fold(options, |o, (s, k, v)| o.set_env(s, k, v)))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; `make bench` builds with --release");
    }
    if args.instances.len() > 1 {
        return scaling(&args).await;
    }
    let prefix = "bench";
    let dir = args.out.join("stack");
    let options = stack_options(&args, &dir, prefix, args.instances[0])?;
    let settings = serde_json::json!({
        "broker": "Apache Kafka (infra/kafka)",
        "run_seconds": args.duration,
        "search_seconds": args.search_seconds,
        "idle_seconds": args.idle_seconds,
        "simulated_delays_ms": 0,
        "trace_sampling": "100%",
        "fsync": "on (PostgreSQL defaults)",
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "service_env": args.env.iter().map(|(s, k, v)| format!("{s}:{k}={v}")).collect::<Vec<_>>(),
        "instances_per_service": args.instances[0],
    });

    eprintln!("starting the stack (logs in {})", dir.join("logs").display());
    let mut stack = Stack::start(options).await?;
    let result = bench(&args, &mut stack, prefix, settings).await;
    stack.stop().await?;
    let report = result?;

    let text = report::table(&report);
    println!("\n{text}");
    std::fs::create_dir_all(&args.out)?;
    let json = serde_json::to_string_pretty(&report)?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let file = args.out.join(format!("bench-{stamp}.json"));
    std::fs::write(&file, &json)?;
    std::fs::write(args.out.join("latest.json"), &json)?;
    std::fs::write(args.out.join("latest.txt"), &text)?;
    println!("JSON: {}", file.display());

    // Absolute numbers are not judged; errors at half the maximum rate are.
    let broken: Vec<_> = report
        .runs
        .iter()
        .filter(|r| r.offered_per_s <= report.max_sustainable_per_s * 0.5 && !r.clean())
        .collect();
    if !broken.is_empty() {
        for r in &broken {
            eprintln!("run {} had errors: {:?}", r.label, r.error_samples);
        }
        bail!("orders failed at a rate the stack sustains");
    }
    Ok(())
}

async fn bench(args: &Args, stack: &mut Stack, prefix: &str, settings: serde_json::Value) -> Result<Report> {
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let dirty = !git(&["status", "--porcelain"]).is_empty();
    let commit = format!(
        "{}{}",
        git(&["rev-parse", "--short", "HEAD"]),
        if dirty { "-dirty" } else { "" }
    );

    eprintln!("measuring the broker's round trip and produce rate");
    let limit_options = LimitOptions {
        round_trips: if args.quick { 100 } else { 1000 },
        produce_records: if args.quick { 5_000 } else { 50_000 },
        pg_seconds: if args.quick { 1.5 } else { 5.0 },
    };
    let broker = limits::broker(&stack.kafka, &limit_options).await?;
    eprintln!("measuring PostgreSQL's commit rate for a saga step at 1 and 16 clients");
    let postgres = limits::postgres(&omnisaga_stack::pg_server(), &[1, 16], limit_options.pg_seconds).await?;
    let limits = Limits { broker, postgres };

    let target = target_of(stack, prefix);
    let follower = Follower::start(&stack.kafka).await?;
    let idle = Duration::from_secs(180);

    // Warm-up: connections, caches, the consumers' first fetches, and the
    // broker's JIT: a JVM compiles its hot paths in its first minute, which
    // otherwise shows as broker CPU in the first runs and the idle window.
    load::wait_idle(&target, idle).await?;
    let warm = warm_up(args, &target, &follower).await?;
    if !warm.clean() {
        bail!(
            "orders failed during the warm-up at 50/s: {:?}",
            warm.error_samples
        );
    }

    let idle_cost = measure_idle(&target, args.idle_seconds).await?;

    let (max, search) = match args.max_rate {
        Some(r) => (r, Vec::new()),
        None => search_max(args, &target, &follower).await?,
    };

    let mut runs = Vec::new();
    for share in &args.shares {
        load::wait_idle(&target, idle).await?;
        let rate = (max * share / 100.0).max(1.0);
        let label = format!("{share:.0}% {rate:.0}/s");
        eprintln!("running at {label} for {:.0} s", args.duration);
        let perf = match args.perf {
            true => Some(perf::record(
                &args.out,
                &label,
                Duration::from_secs_f64(args.duration),
            )?),
            false => None,
        };
        runs.push(
            load::run(
                &target,
                &follower,
                &RunOptions {
                    label: label.clone(),
                    rate,
                    duration: Duration::from_secs_f64(args.duration),
                    drain: Duration::from_secs(60),
                },
            )
            .await?,
        );
        if let Some(perf) = perf {
            eprintln!(
                "CPU samples of run {label} by process and object (perf, every CPU):\n{}",
                perf.finish()?
            );
        }
    }
    let ratios = runs.iter().map(|r| report::ratios(&limits, r)).collect();

    // On a CPU-bound machine throughput is inversely proportional to CPU per
    // order, measured at a fixed rate each way on freshly started services:
    // every trace, one in ten (the root's choice, which the other services
    // follow from the trace context), none.
    let tracing = if args.tracing_cost {
        let rate = (max * 0.5).max(1.0);
        let mut measured = Vec::new();
        for (sampler, arg) in [
            ("always_on", "1"),
            ("parentbased_traceidratio", "0.1"),
            ("always_off", "0"),
        ] {
            eprintln!(
                "restarting the services with OTEL_TRACES_SAMPLER={sampler} OTEL_TRACES_SAMPLER_ARG={arg}"
            );
            load::wait_idle(&target, idle).await?;
            stack.set_service_env("*", "OTEL_TRACES_SAMPLER", sampler);
            stack.set_service_env("*", "OTEL_TRACES_SAMPLER_ARG", arg);
            restart_services(stack).await?;
            let target = target_of(stack, prefix);
            load::wait_idle(&target, idle).await?;
            let options = RunOptions {
                label: format!("sampling {arg} {rate:.0}/s"),
                rate,
                duration: Duration::from_secs_f64(args.duration.min(60.0)),
                drain: Duration::from_secs(60),
            };
            measured.push(load::run(&target, &follower, &options).await?);
        }
        let (on, tenth, off) = (&measured[0], &measured[1], &measured[2]);
        let cost = |run: &load::RunResult| 1.0 - off.cpu_seconds_per_order / run.cpu_seconds_per_order;
        Some(TracingCost {
            rate,
            sampled_cpu_per_order: on.cpu_seconds_per_order,
            tenth_cpu_per_order: tenth.cpu_seconds_per_order,
            unsampled_cpu_per_order: off.cpu_seconds_per_order,
            sampled_saga_p50_ms: on.saga.p50_ms,
            tenth_saga_p50_ms: tenth.saga.p50_ms,
            unsampled_saga_p50_ms: off.saga.p50_ms,
            throughput_cost: cost(on),
            tenth_throughput_cost: cost(tenth),
            errors: measured.iter().map(|r| r.errors + r.cancelled).sum(),
        })
    } else {
        None
    };

    Ok(Report {
        date,
        commit,
        machine: Machine::read(),
        settings,
        limits,
        idle: idle_cost,
        search,
        max_sustainable_per_s: max,
        runs,
        ratios,
        tracing,
    })
}

/// The warm-up run at 50 orders/s: connections, caches, the consumers'
/// first fetches and the broker's JIT.
async fn warm_up(args: &Args, target: &Target, follower: &Follower) -> Result<load::RunResult> {
    let options = RunOptions {
        label: "warm-up".into(),
        rate: 50.0,
        duration: Duration::from_secs(if args.quick { 5 } else { 20 }),
        drain: Duration::from_secs(30),
    };
    load::run(target, follower, &options).await
}

/// Finds the highest order rate the stack sustains (every order finished,
/// saga p99 within a second): doubling until it fails, then bisecting.
async fn search_max(args: &Args, target: &Target, follower: &Follower) -> Result<(f64, Vec<SearchStep>)> {
    eprintln!("searching the maximum sustainable order rate");
    let idle = Duration::from_secs(180);
    let mut search = Vec::new();
    let (mut good, mut bad): (Option<f64>, Option<f64>) = (None, None);
    let mut rate: f64 = 100.0;
    for _ in 0..if args.quick { 5 } else { 10 } {
        load::wait_idle(target, idle).await?;
        let run = load::run(
            target,
            follower,
            &RunOptions {
                label: format!("search {rate:.0}/s"),
                rate,
                duration: Duration::from_secs_f64(args.search_seconds),
                drain: Duration::from_secs(5),
            },
        )
        .await?;
        let sustainable = run.clean() && run.saga.p99_ms <= 1000.0;
        eprintln!(
            "  {rate:.0}/s: {} (saga p99 {:.0} ms, {} errors)",
            if sustainable {
                "sustainable"
            } else {
                "not sustainable"
            },
            run.saga.p99_ms,
            run.errors + run.cancelled
        );
        search.push(SearchStep {
            offered_per_s: rate,
            sustainable,
            saga_p99_ms: run.saga.p99_ms,
            errors: run.errors + run.cancelled,
        });
        if sustainable {
            good = Some(rate);
        } else {
            bad = Some(rate);
        }
        rate = match (good, bad) {
            (Some(g), None) => g * 2.0,
            (None, Some(b)) => b / 2.0,
            (Some(g), Some(b)) if b / g > 1.1 => ((g + b) / 2.0).round(),
            _ => break,
        };
        if rate < 5.0 {
            break;
        }
    }
    let max = good.context("the stack sustained none of the rates tried")?;
    Ok((max, search))
}

/// One instance count of the scaling comparison.
#[derive(Debug, Clone, serde::Serialize)]
struct Scaled {
    instances: usize,
    max_sustainable_per_s: f64,
    search: Vec<SearchStep>,
    /// The run at the common rate.
    run: omnisaga_bench::load::RunResult,
}

/// `--instances 1,2,3`: a stack per count, its maximum and a run at one
/// common rate, as a table (and JSON) under `--out`.
async fn scaling(args: &Args) -> Result<()> {
    let mut rows: Vec<Scaled> = Vec::new();
    let mut common = None;
    for &n in &args.instances {
        let prefix = format!("bench{n}");
        let dir = args.out.join(format!("stack-{n}"));
        eprintln!(
            "starting a stack with {n} instance(s) of every service (logs in {})",
            dir.join("logs").display()
        );
        let stack = Stack::start(stack_options(args, &dir, &prefix, n)?).await?;
        let result = async {
            let target = target_of(&stack, &prefix);
            let follower = Follower::start(&stack.kafka).await?;
            load::wait_idle(&target, Duration::from_secs(180)).await?;
            warm_up(args, &target, &follower).await?;
            let (max, search) = match args.max_rate {
                Some(r) => (r, Vec::new()),
                None => search_max(args, &target, &follower).await?,
            };
            let rate = *common.get_or_insert((max * 0.5).max(1.0));
            load::wait_idle(&target, Duration::from_secs(180)).await?;
            eprintln!(
                "running {n} instance(s) at {rate:.0}/s for {:.0} s",
                args.duration
            );
            let run = load::run(
                &target,
                &follower,
                &RunOptions {
                    label: format!("{n} instance(s) {rate:.0}/s"),
                    rate,
                    duration: Duration::from_secs_f64(args.duration),
                    drain: Duration::from_secs(60),
                },
            )
            .await?;
            anyhow::Ok(Scaled {
                instances: n,
                max_sustainable_per_s: max,
                search,
                run,
            })
        }
        .await;
        stack.stop().await?;
        rows.push(result?);
    }
    let mut text = format!(
        "omnisaga bench: instances per service  {}  commit {}\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        git(&["rev-parse", "--short", "HEAD"])
    );
    text += "instances  max sustainable/s  | at the common rate:  offered/s  finished/s  saga p50 ms  saga p99 ms  CPU s/order  errors\n";
    for r in &rows {
        text += &format!(
            "{:>9}  {:>17.0}  | {:>29.0}  {:>10.1}  {:>11.1}  {:>11.1}  {:>11.4}  {:>6}\n",
            r.instances,
            r.max_sustainable_per_s,
            r.run.offered_per_s,
            r.run.completed_per_s,
            r.run.saga.p50_ms,
            r.run.saga.p99_ms,
            r.run.cpu_seconds_per_order,
            r.run.errors + r.run.cancelled
        );
    }
    println!("\n{text}");
    std::fs::create_dir_all(&args.out)?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let file = args.out.join(format!("scaling-{stamp}.json"));
    std::fs::write(&file, serde_json::to_string_pretty(&rows)?)?;
    std::fs::write(args.out.join("scaling-latest.txt"), &text)?;
    println!("JSON: {}", file.display());
    let broken: Vec<_> = rows.iter().filter(|r| !r.run.clean()).collect();
    if !broken.is_empty() {
        for r in &broken {
            eprintln!(
                "{} instance(s) had errors: {:?}",
                r.instances, r.run.error_samples
            );
        }
        bail!("orders failed at half the stack's maximum rate");
    }
    Ok(())
}
