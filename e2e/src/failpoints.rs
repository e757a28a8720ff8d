//! Crashes at a named window (`omnisaga_runtime::failpoint`): a service
//! started again with `FAILPOINTS` armed, its death there awaited and made
//! sure of, and the counters that show what came after. The binaries must
//! carry failpoints (`make build`, or `cargo build --workspace --bins
//! --features omnisaga-runtime/failpoints`); a service of a build without
//! them refuses to start with `FAILPOINTS` set, and says how to build.

use std::{os::unix::process::ExitStatusExt as _, time::Duration};

use anyhow::{ensure, Context, Result};

use crate::Stack;

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
