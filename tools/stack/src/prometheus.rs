//! The stack's Prometheus: Debian's `prometheus` (`make deps` installs it)
//! as a process of its own, scraping every instance's `/metrics` (open to
//! anyone, no token) in OpenMetrics with exemplar storage on, so the
//! latency histograms' exemplars lead to traces, with the project's alert
//! rules (`infra/prometheus/alerts.yml`) loaded. Its config is written for
//! the stack's actual ports to `<dir>/prometheus/prometheus.yml`, its data
//! kept in `<dir>/prometheus/data`; it listens on 127.0.0.1, on
//! [`PORT`] under `make run`, a free port in a test stack. It also serves
//! `infra/prometheus/user/` at `/user/`: `exemplars.html`, the latency
//! graph with each exemplar a link to its trace in the trace viewer (the
//! graph page of Debian's Prometheus 2.42, the classic UI, draws no
//! exemplars).

use std::{fmt::Write as _, path::PathBuf, process::Stdio, time::Duration};

use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};

use crate::{
    instance_label,
    process::{free_port, open_log, terminate, wait_tcp},
    repo_root, Stack, SERVICES,
};

/// Where `make run`'s Prometheus listens: not 9090, which the Debian
/// package's own service takes once installed.
pub const PORT: u16 = 19090;

/// A running Prometheus.
pub struct Prometheus {
    /// Its UI and HTTP API (`/api/v1/...`).
    pub url: String,
    /// The page of latency and exemplars, each a link to its trace.
    pub exemplars_url: String,
    child: Child,
}

impl Prometheus {
    /// Starts Prometheus for `stack`, scraping every instance of every
    /// service each `interval` (and evaluating the rules as often), and
    /// waits until it is ready.
    pub async fn start(stack: &Stack, interval: Duration) -> Result<Self> {
        let dir = stack.options.dir.join("prometheus");
        std::fs::create_dir_all(dir.join("data"))?;
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, config_of(stack, interval)?)?;
        let port = if stack.options.fixed_ports {
            PORT
        } else {
            free_port()?
        };
        let log_path = stack.log_path("prometheus");
        let log = open_log(&log_path)?;
        let user_assets = repo_root()?.join("infra/prometheus/user");
        let mut child = Command::new("prometheus")
            .arg(format!("--config.file={}", absolute(config)?.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                absolute(dir.join("data"))?.display()
            ))
            .arg("--storage.tsdb.retention.time=7d")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--web.user-assets={}", user_assets.display()))
            .arg("--enable-feature=exemplar-storage")
            .arg("--web.page-title=omnisaga's Prometheus")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("Failed to start prometheus (Debian's package: `make deps` installs it)")?;
        let url = format!("http://127.0.0.1:{port}");
        wait_tcp(
            &format!("127.0.0.1:{port}"),
            &mut child,
            &log_path,
            Duration::from_secs(60),
        )
        .await
        .context("Prometheus did not start")?;
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !http
            .get(format!("{url}/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "Prometheus was not ready within 60 s (log: {})",
                    log_path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let exemplars_url = format!("{url}/user/exemplars.html?traces={}", stack.traces_url);
        Ok(Self {
            url,
            exemplars_url,
            child,
        })
    }

    /// Stops it gracefully (SIGTERM: it writes its head block).
    pub async fn stop(mut self) {
        terminate(&mut self.child, "prometheus").await;
    }
}

/// `stack`'s scrape config: job `omnisaga` (the alert rules' `up`), one
/// target per instance, labelled `instance` with its name (`payment-2`).
fn config_of(stack: &Stack, interval: Duration) -> Result<String> {
    let every = format!("{}ms", interval.as_millis().max(1));
    let rules = repo_root()?.join("infra/prometheus/alerts.yml");
    let mut yml = String::new();
    writeln!(
        yml,
        "# Written by the stack for this run's ports (tools/stack/src/prometheus.rs)."
    )?;
    writeln!(yml, "global:")?;
    writeln!(yml, "  scrape_interval: {every}")?;
    writeln!(yml, "  scrape_timeout: {every}")?;
    writeln!(yml, "  evaluation_interval: {every}")?;
    writeln!(yml, "rule_files:\n  - {:?}", rules.display().to_string())?;
    writeln!(
        yml,
        "scrape_configs:\n  - job_name: omnisaga\n    metrics_path: /metrics"
    )?;
    writeln!(yml, "    static_configs:")?;
    for (name, _) in SERVICES {
        for i in 1..=stack.options.instances_of(name) {
            let port = stack.instance_ports[&(name, i)];
            writeln!(yml, "      - targets: [\"127.0.0.1:{port}\"]")?;
            writeln!(yml, "        labels: {{instance: {:?}}}", instance_label(name, i))?;
        }
    }
    Ok(yml)
}

fn absolute(path: PathBuf) -> Result<PathBuf> {
    Ok(std::path::absolute(path)?)
}
