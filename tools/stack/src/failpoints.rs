//! Crashes at a named window (`omnisaga_runtime::failpoint`): a service
//! started again with `FAILPOINTS` armed, an order placed into the window,
//! its death there awaited and made sure of, and the counters that show
//! what came after. The binaries must carry failpoints (`make build`, or
//! `cargo build --workspace --bins --features omnisaga-runtime/failpoints`);
//! a service of a build without them refuses to start with `FAILPOINTS`
//! set, and says how to build.

use std::{os::unix::process::ExitStatusExt as _, time::Duration};

use anyhow::{ensure, Context, Result};

use crate::{
    client::{order_body, Client},
    Stack,
};

/// Longest a consumer group takes to hand a restarted service its
/// partitions: a crashed member is dropped after the session timeout (10 s).
const ASSIGNED: Duration = Duration::from_secs(30);

/// SIGABRT: what `std::process::abort` ends a process with.
const SIGABRT: i32 = 6;

impl Stack {
    /// Stops every instance of `service` still running gracefully and
    /// starts them all again with `FAILPOINTS=spec` (`""`: none armed);
    /// returns once its consumers were assigned partitions, so what comes
    /// next is consumed as it comes, not fetched in a heap from several
    /// topics at once.
    pub async fn restart_with_failpoints(&mut self, service: &'static str, spec: &str) -> Result<()> {
        if !self.running(service).is_empty() {
            self.stop_service(service).await?;
        }
        self.set_service_env(service, "FAILPOINTS", spec);
        self.start_service(service).await?;
        let url = self.url(service);
        crate::client::wait_for(
            &format!("{service}'s consumers to be assigned partitions"),
            ASSIGNED,
            || async {
                let n = counter(
                    &url,
                    "omnisaga_consumer_rebalanced_partitions_total",
                    &[("change", "assigned")],
                )
                .await?;
                Ok((n > 0.0).then_some(()))
            },
        )
        .await
    }

    /// Waits up to `timeout` for the first instance of `service` to end,
    /// takes it out of the stack, and makes sure it was aborted by the
    /// failpoint `name` (SIGABRT, and its log naming it).
    pub async fn wait_aborted_at(&mut self, service: &str, name: &str, timeout: Duration) -> Result<()> {
        let i = self
            .services
            .iter()
            .position(|s| s.name == service && s.instance == 1)
            .with_context(|| format!("{service} is not running"))?;
        let status = tokio::time::timeout(timeout, self.services[i].child.wait())
            .await
            .with_context(|| format!("{service} did not reach failpoint {name} within {timeout:?}"))??;
        let s = self.services.remove(i);
        let log = std::fs::read_to_string(self.log_path(&s.label())).unwrap_or_default();
        ensure!(
            status.signal() == Some(SIGABRT),
            "{service} ended with {status}, not aborted at {name}: {}",
            tail(&log)
        );
        ensure!(
            log.contains(&format!("failpoint {name} hit")),
            "{service} aborted, yet its log does not name failpoint {name}: {}",
            tail(&log)
        );
        Ok(())
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// The sum of the Prometheus counter `name` over the series whose labels
/// include every one of `labels`, at `base_url/metrics`.
pub async fn counter(base_url: &str, name: &str, labels: &[(&str, &str)]) -> Result<f64> {
    let text = reqwest::get(format!("{base_url}/metrics"))
        .await?
        .error_for_status()?
        .text()
        .await?;
    let mut sum = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        if metric != name {
            continue;
        }
        if labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))) {
            sum += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    Ok(sum)
}

/// An order placed while `service` was armed to abort at a failpoint,
/// after the abort.
pub struct Crashed {
    pub service: &'static str,
    key: String,
    body: serde_json::Value,
    /// The placement's answer: none when the order service died first.
    pub placed: Option<serde_json::Value>,
}

impl Crashed {
    /// The order's id, when the placement was answered.
    pub fn order_id(&self) -> Result<String> {
        let answer = self.placed.as_ref().context("the placement was not answered")?;
        Ok(answer["order_id"].as_str().context("no order_id")?.to_owned())
    }
}

/// Places an order while `service` is armed to abort at `name` and waits
/// for the abort; the service stays down until [`recover`].
pub async fn place_and_crash(
    stack: &mut Stack,
    service: &'static str,
    name: &str,
    who: &str,
) -> Result<Crashed> {
    stack
        .restart_with_failpoints(service, &format!("{name}=abort"))
        .await?;
    let c = Client::new(stack);
    let key = uuid::Uuid::new_v4().to_string();
    let body = order_body("SKU-MUG", 1, "tok_visa", who);
    // The order service may die before it answers (its relay's window):
    // the same key is asked again once it is back.
    let placed = match c.post_order(&key, &body).await {
        Ok((201, answer)) => Some(answer),
        _ => None,
    };
    stack
        .wait_aborted_at(service, name, Duration::from_secs(30))
        .await?;
    eprintln!("[failpoints] {service} aborted at {name}");
    Ok(Crashed {
        service,
        key,
        body,
        placed,
    })
}

/// Starts the crashed service again, unarmed; the order's id.
pub async fn recover(stack: &mut Stack, crashed: Crashed) -> Result<String> {
    stack.restart_with_failpoints(crashed.service, "").await?;
    if crashed.placed.is_some() {
        return crashed.order_id();
    }
    let (status, answer) = Client::new(stack).post_order(&crashed.key, &crashed.body).await?;
    ensure!(status == 201, "placing answered {status}: {answer}");
    Ok(answer["order_id"].as_str().context("no order_id")?.to_owned())
}
