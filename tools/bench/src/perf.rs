//! `--perf`: where the CPU goes during a run, sampled by Linux `perf` on
//! every CPU (services, broker, PostgreSQL and the generator alike), kept
//! as `perf-<label>.data` beside the report with two summaries: the share
//! of samples by process and by shared object, and the hottest functions.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result};

/// A `perf record` running for one run.
pub struct Recording {
    child: Child,
    data: PathBuf,
}

/// Starts sampling every CPU (199 Hz, call graphs) for `length`.
pub fn record(out: &Path, label: &str, length: Duration) -> Result<Recording> {
    let name: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let data = out.join(format!("perf-{name}.data"));
    let child = Command::new("perf")
        .args(["record", "-F", "199", "-a", "-g", "--quiet", "-o"])
        .arg(&data)
        .args(["--", "sleep"])
        .arg(format!("{:.0}", length.as_secs_f64()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("Failed to start `perf record` (Debian's linux-perf; --perf needs it)")?;
    Ok(Recording { child, data })
}

impl Recording {
    /// Waits for the recording and writes its summaries; returns the
    /// by-process one, to print.
    pub fn finish(mut self) -> Result<String> {
        let status = self.child.wait()?;
        anyhow::ensure!(status.success(), "`perf record` failed: {status}");
        let by_process = report(&self.data, &["--sort", "comm,dso", "--percent-limit", "1"])?;
        let functions = report(&self.data, &["--sort", "comm,sym", "--percent-limit", "0.3"])?;
        std::fs::write(self.data.with_extension("processes.txt"), &by_process)?;
        std::fs::write(self.data.with_extension("functions.txt"), functions)?;
        Ok(by_process)
    }
}

fn report(data: &Path, sort: &[&str]) -> Result<String> {
    let out = Command::new("perf")
        .args(["report", "--stdio", "--no-children", "-g", "none", "-i"])
        .arg(data)
        .args(sort)
        .output()
        .context("Failed to run `perf report`")?;
    anyhow::ensure!(
        out.status.success(),
        "`perf report` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n"))
}
