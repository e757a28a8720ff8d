//! The faults a run injects while its load runs, each healed before the
//! next: processes killed (SIGKILL) and started again, paused past the
//! consumer session timeout, the broker killed and restarted, the services'
//! database connections cut, the payment provider down, poison records on
//! the topics, the network to the broker slow, silent or reset (through
//! the stack's proxy, `omnisaga_stack::netfault`). Where a service runs as several
//! instances, a kill takes one of them, picked at random, and leaves it down
//! for a few seconds while the others carry its work; a rolling restart
//! stops and starts each instance in turn. Each fault leaves a record with
//! when it began and was healed.

use std::time::Duration;

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use serde::Serialize;
use sqlx::Connection as _;
use tokio::time::Instant;

use super::{
    dead_letters::POISON,
    load::Load,
    pgfault::Cut,
    schedule::{pick_instance, random_kill},
};
use omnisaga_stack::{
    client::Client, netfault::Mode, pg_server, process::signal, produce_raw, Stack, SERVICES,
};

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL of this service, started again at once; of one of its
    /// instances, when it runs several, started again after
    /// [`INSTANCE_DOWN`].
    Kill(&'static str),
    /// For the duration, every 5 to 20 s (at random) a SIGKILL of a service
    /// (an instance) picked at random, started again as [`Fault::Kill`] does.
    KillRandomly(Duration),
    /// Every instance of every service stopped gracefully (SIGTERM) and
    /// started again, one at a time, as a deployment rolls out a release.
    RollingRestart,
    /// SIGSTOP of this service for the duration (past the consumer session
    /// timeout of 10 s: its group rebalances without it), then SIGCONT.
    Pause(&'static str, Duration),
    /// SIGKILL of the broker, started again on the same data.
    KillBroker,
    /// Every byte between the clients and the broker late by this many
    /// milliseconds (plus up to half again of jitter) for the duration.
    NetworkDelay(Duration, u64),
    /// Nothing passes between the clients and the broker for the duration
    /// (what total packet loss looks like to a client), then everything
    /// held goes on.
    NetworkStall(Duration),
    /// Every connection to the broker reset at once.
    NetworkCut,
    /// Every database connection of the stack's services terminated.
    CutDatabaseConnections,
    /// The payment provider answers "unavailable" for the duration.
    ProviderDown(Duration),
    /// Records no service can decode, on every saga topic.
    Poison,
    /// Orders of the load parked behind dead letters, each resolved by one
    /// of the dead-letter verbs: replay after a fix, redrive, discard, skip
    /// ([`super::dead_letters`]).
    DeadLetterVerbs,
    /// Twice the load's rate for the duration.
    Overload(Duration),
    /// The database traffic of the instance of this service whose outbox
    /// relay leads silently partitioned for the duration, past the
    /// keepalive that ends its lock, its process running on
    /// ([`super::pgfault::partition_relay_leader`]); then only one relay
    /// may publish.
    PartitionRelayLeader(&'static str, Duration),
    /// As [`Fault::PartitionRelayLeader`], but only the leader's lock
    /// connection is cut off (a middlebox dropping one idle connection);
    /// its pool still works.
    PartitionRelayLock(&'static str, Duration),
    /// Every byte between the services and PostgreSQL late by this many
    /// milliseconds (plus up to half again) for the duration: long
    /// transactions, pools run dry.
    SlowDatabase(Duration, u64),
    /// The leader of a partition of the broker cluster killed this many
    /// times, each time started again and back in sync before the next.
    KillPartitionLeader(u32),
    /// The leader of a partition of the broker cluster paused (SIGSTOP)
    /// for the duration, past `replica.lag.time.max.ms`, then resumed.
    PausePartitionLeader(Duration),
    /// The PostgreSQL server stopped in immediate mode (as a crash: no
    /// checkpoint, recovery at start) and started again. It is the
    /// machine's server: only for runs nothing else shares it with.
    RestartDatabase,
}

impl Fault {
    /// Its name in reports.
    pub fn name(&self) -> String {
        match self {
            Self::Kill(s) => format!("kill -9 {s}"),
            Self::KillRandomly(d) => {
                format!("kill -9 of a random service every 5-20 s for {} s", d.as_secs())
            }
            Self::Pause(s, d) => format!("SIGSTOP {s} for {} s", d.as_secs()),
            Self::RollingRestart => "rolling restart of every instance".into(),
            Self::KillBroker => "kill -9 broker".into(),
            Self::NetworkDelay(d, ms) => {
                format!("{ms} ms delay to and from the broker for {} s", d.as_secs())
            }
            Self::NetworkStall(d) => format!("nothing to or from the broker for {} s", d.as_secs()),
            Self::NetworkCut => "every broker connection reset".into(),
            Self::CutDatabaseConnections => "pg_terminate_backend of every service connection".into(),
            Self::ProviderDown(d) => format!("payment provider down for {} s", d.as_secs()),
            Self::Poison => "poison records on every saga topic".into(),
            Self::DeadLetterVerbs => "poisoned orders resolved by replay, redrive, discard and skip".into(),
            Self::Overload(d) => format!("twice the rate for {} s", d.as_secs()),
            Self::RestartDatabase => "PostgreSQL stopped in immediate mode and started".into(),
            Self::PartitionRelayLeader(s, d) => {
                format!("{s}'s relay leader cut off from PostgreSQL for {} s", d.as_secs())
            }
            Self::PartitionRelayLock(s, d) => {
                format!(
                    "{s}'s relay leader's lock connection cut off for {} s",
                    d.as_secs()
                )
            }
            Self::SlowDatabase(d, ms) => {
                format!("{ms} ms delay to and from PostgreSQL for {} s", d.as_secs())
            }
            Self::KillPartitionLeader(n) => format!("kill -9 of a partition's leader broker, {n} times"),
            Self::PausePartitionLeader(d) => {
                format!("SIGSTOP of a partition's leader broker for {} s", d.as_secs())
            }
        }
    }

    /// Parses a fault as the `omnisaga-chaos` command line names it:
    /// `kill:payment`, `random-kills:60`, `pause:warehouse:15`, `broker`,
    /// `net-delay:30:200`, `net-stall:15`, `net-cut`, `db-connections`,
    /// `provider:30`, `poison`, `dlq-verbs`, `overload:20`, `pg-restart`,
    /// `rolling-restart`, `pg-partition:order:35`,
    /// `pg-partition-lock:order:35`, `pg-delay:20:200`,
    /// `leader-kills:3`, `leader-pause:15`, or `kill-each` for one kill of
    /// every service.
    pub fn parse(s: &str) -> Result<Vec<Self>> {
        let service = |name: &str| {
            SERVICES
                .iter()
                .map(|(n, _)| *n)
                .find(|n| *n == name)
                .with_context(|| format!("no service {name}"))
        };
        let secs = |v: &str| -> Result<Duration> {
            Ok(Duration::from_secs(
                v.parse()
                    .with_context(|| format!("{v} is no number of seconds"))?,
            ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        Ok(match parts.as_slice() {
            ["kill-each"] => SERVICES.iter().map(|(n, _)| Self::Kill(n)).collect(),
            ["kill", name] => vec![Self::Kill(service(name)?)],
            ["random-kills", s] => vec![Self::KillRandomly(secs(s)?)],
            ["pause", name, s] => vec![Self::Pause(service(name)?, secs(s)?)],
            ["broker"] => vec![Self::KillBroker],
            ["net-delay", s, ms] => vec![Self::NetworkDelay(
                secs(s)?,
                ms.parse().with_context(|| format!("{ms} is no number of milliseconds"))?,
            )],
            ["net-stall", s] => vec![Self::NetworkStall(secs(s)?)],
            ["net-cut"] => vec![Self::NetworkCut],
            ["db-connections"] => vec![Self::CutDatabaseConnections],
            ["provider", s] => vec![Self::ProviderDown(secs(s)?)],
            ["poison"] => vec![Self::Poison],
            ["dlq-verbs"] => vec![Self::DeadLetterVerbs],
            ["overload", s] => vec![Self::Overload(secs(s)?)],
            ["pg-restart"] => vec![Self::RestartDatabase],
            ["rolling-restart"] => vec![Self::RollingRestart],
            ["pg-partition", name, s] => vec![Self::PartitionRelayLeader(service(name)?, secs(s)?)],
            ["pg-partition-lock", name, s] => vec![Self::PartitionRelayLock(service(name)?, secs(s)?)],
            ["pg-delay", s, ms] => vec![Self::SlowDatabase(
                secs(s)?,
                ms.parse().with_context(|| format!("{ms} is no number of milliseconds"))?,
            )],
            ["leader-kills", n] => vec![Self::KillPartitionLeader(
                n.parse().with_context(|| format!("{n} is no number of kills"))?,
            )],
            ["leader-pause", s] => vec![Self::PausePartitionLeader(secs(s)?)],
            _ => anyhow::bail!(
                "unknown fault {s:?}: kill-each, kill:SERVICE, random-kills:SECONDS, pause:SERVICE:SECONDS, broker, net-delay:SECONDS:MS, net-stall:SECONDS, net-cut, db-connections, provider:SECONDS, poison, dlq-verbs, overload:SECONDS, pg-restart, rolling-restart, pg-partition:SERVICE:SECONDS, pg-partition-lock:SERVICE:SECONDS, pg-delay:SECONDS:MS, leader-kills:N, leader-pause:SECONDS"
            ),
        })
    }
}

/// A fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct Injected {
    pub fault: String,
    /// Seconds since the run started.
    pub began: f64,
    pub healed: f64,
    /// What went wrong injecting or healing it, if anything.
    pub error: Option<String>,
    /// What it saw, where it says (who led after it, how long that took).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Injects `fault` into `stack` (under `load`) and heals it; `started` is
/// the run's start, `rng` the run's seeded source of every random choice.
pub async fn inject(
    stack: &mut Stack,
    client: &Client,
    load: &Load,
    fault: &Fault,
    started: Instant,
    rng: &mut StdRng,
) -> Injected {
    let began = started.elapsed().as_secs_f64();
    let result = apply(stack, client, load, fault, rng).await;
    let (note, error) = match result {
        Ok(note) => (note, None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    Injected {
        fault: fault.name(),
        began,
        healed: started.elapsed().as_secs_f64(),
        error,
        note,
    }
}

/// Applies `fault` and heals it; what it saw, where it says.
async fn apply(
    stack: &mut Stack,
    client: &Client,
    load: &Load,
    fault: &Fault,
    rng: &mut StdRng,
) -> Result<Option<String>> {
    match fault {
        Fault::PartitionRelayLeader(service, duration) => {
            super::pgfault::partition_relay_leader(stack, service, *duration, Cut::Instance)
                .await
                .map(Some)
        }
        Fault::PartitionRelayLock(service, duration) => {
            super::pgfault::partition_relay_leader(stack, service, *duration, Cut::LockConnection)
                .await
                .map(Some)
        }
        Fault::SlowDatabase(duration, ms) => super::pgfault::slow_database(stack, *duration, *ms)
            .await
            .map(|()| None),
        Fault::KillPartitionLeader(n) => super::cluster::kill_leader(stack, *n).await.map(Some),
        Fault::PausePartitionLeader(d) => super::cluster::pause_leader(stack, *d).await.map(Some),
        Fault::DeadLetterVerbs => super::dead_letters::resolve_each_way(stack, load).await.map(Some),
        _ => apply_one(stack, client, load, fault, rng).await.map(|()| None),
    }
}

async fn apply_one(
    stack: &mut Stack,
    client: &Client,
    load: &Load,
    fault: &Fault,
    rng: &mut StdRng,
) -> Result<()> {
    match fault {
        Fault::Kill(service) => kill(stack, service, rng).await.map(|_| ()),
        Fault::KillRandomly(duration) => {
            let until = Instant::now() + *duration;
            loop {
                let (service, wait) = random_kill(rng);
                let killed = kill(stack, service, rng).await?;
                eprintln!("[chaos] killed {killed} and started it again");
                if Instant::now() + wait >= until {
                    tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
                    return Ok(());
                }
                tokio::time::sleep(wait).await;
            }
        }
        Fault::Pause(service, duration) => {
            let pid = stack
                .pids()
                .into_iter()
                .find(|(name, _)| name == service)
                .map(|(_, pid)| pid)
                .with_context(|| format!("{service} is not running"))?;
            signal("STOP", pid).await?;
            tokio::time::sleep(*duration).await;
            signal("CONT", pid).await
        }
        Fault::RollingRestart => {
            for (service, _) in SERVICES {
                for instance in 1..=stack.instances(service) {
                    stack.stop_instance(service, instance).await?;
                    stack.start_instance(service, instance).await?;
                }
            }
            Ok(())
        }
        Fault::KillBroker => {
            stack.kill_broker().await?;
            stack.restart_broker().await
        }
        Fault::NetworkDelay(duration, ms) => {
            let proxy = network(stack)?;
            proxy.set(Mode::Delay {
                delay: Duration::from_millis(*ms),
                jitter: Duration::from_millis(ms / 2),
            });
            tokio::time::sleep(*duration).await;
            proxy.set(Mode::Pass);
            Ok(())
        }
        Fault::NetworkStall(duration) => {
            let proxy = network(stack)?;
            proxy.set(Mode::Stall);
            tokio::time::sleep(*duration).await;
            proxy.set(Mode::Pass);
            Ok(())
        }
        Fault::NetworkCut => {
            network(stack)?.cut();
            Ok(())
        }
        Fault::CutDatabaseConnections => {
            let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", pg_server())).await?;
            let databases: Vec<String> = SERVICES.iter().map(|(s, _)| stack.database(s)).collect();
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = ANY($1) AND pid <> pg_backend_pid()",
            )
            .bind(&databases)
            .execute(&mut admin)
            .await?;
            Ok(())
        }
        Fault::ProviderDown(duration) => {
            client.set_provider_outage(true).await?;
            tokio::time::sleep(*duration).await;
            client.set_provider_outage(false).await
        }
        Fault::Poison => {
            let prefix = stack.topic_prefix().to_owned();
            for topic in ["orders.v1", "payments.v1", "warehouse.v1"] {
                let key = uuid::Uuid::new_v4().to_string();
                produce_raw(&stack.kafka, &format!("{prefix}{topic}"), &key, POISON).await?;
            }
            Ok(())
        }
        Fault::Overload(duration) => {
            load.set_factor(2);
            tokio::time::sleep(*duration).await;
            load.set_factor(1);
            Ok(())
        }
        Fault::RestartDatabase => {
            let version = std::fs::read_dir("/etc/postgresql")?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
                .context("no PostgreSQL cluster in /etc/postgresql")?;
            pg_ctlcluster(&version, &["stop", "-m", "immediate"]).await?;
            pg_ctlcluster(&version, &["start"]).await
        }
        Fault::PartitionRelayLeader(..)
        | Fault::PartitionRelayLock(..)
        | Fault::SlowDatabase(..)
        | Fault::KillPartitionLeader(_)
        | Fault::PausePartitionLeader(_)
        | Fault::DeadLetterVerbs => anyhow::bail!("{} is applied by `apply`", fault.name()),
    }
}

/// How long a killed instance of a service running several stays down.
pub const INSTANCE_DOWN: Duration = Duration::from_secs(3);

/// Kills `service` (one of its instances, at random, when it runs several:
/// down for [`INSTANCE_DOWN`]) and starts it again; returns what it killed.
async fn kill(stack: &mut Stack, service: &'static str, rng: &mut StdRng) -> Result<String> {
    let running = stack.running(service);
    if stack.instances(service) == 1 || running.len() <= 1 {
        stack.kill_service(service).await?;
        stack.start_service(service).await?;
        return Ok(service.to_owned());
    }
    let instance = pick_instance(rng, &running);
    stack.kill_instance(service, instance).await?;
    tokio::time::sleep(INSTANCE_DOWN).await;
    stack.start_instance(service, instance).await?;
    Ok(omnisaga_stack::instance_label(service, instance))
}

/// The proxy in front of the stack's broker.
fn network(stack: &Stack) -> Result<&omnisaga_stack::netfault::Proxy> {
    stack
        .network()
        .context("the stack's broker has no network-fault proxy (Broker::OwnBehindProxy)")
}

/// `pg_ctlcluster VERSION main ARGS...` (e.g. `stop -m immediate`).
async fn pg_ctlcluster(version: &str, args: &[&str]) -> Result<()> {
    let status = tokio::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", version, "main"])
        .args(args)
        .status()
        .await?;
    anyhow::ensure!(
        status.success(),
        "pg_ctlcluster {version} main {}: {status}",
        args.join(" ")
    );
    Ok(())
}
