//! The child processes of the stack: free ports to start them on, their log
//! files, waiting until one accepts connections or answers `/readyz` (failing
//! with its last log lines when it exits first), and stopping one gracefully.

use std::{fs::File, net::TcpListener, path::Path, time::Duration};

use anyhow::{bail, Result};
use tokio::process::{Child, Command};

/// A port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> Result<u16> {
    Ok(reserve_port()?.0)
}

/// A free port on 127.0.0.1, held by the listener until it is dropped.
pub(crate) fn reserve_port() -> Result<(u16, TcpListener)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok((listener.local_addr()?.port(), listener))
}

/// Opens a process's log for appending, creating it when missing, so a
/// restarted process adds to what it wrote before.
pub(crate) fn open_log(path: &Path) -> Result<File> {
    Ok(std::fs::OpenOptions::new().create(true).append(true).open(path)?)
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Waits until `addr` accepts TCP connections; fails when `child` exits
/// first or `timeout` passes.
pub(crate) async fn wait_tcp(addr: &str, child: &mut Child, log: &Path, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("exited with {status}; last log lines:\n{}", log_tail(log));
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{addr} did not accept connections within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until service `name` at `url` answers `/readyz` with a success
/// and its log, past byte `log_from` (where this start of it began
/// writing), says it started: a `/readyz` from another process that took
/// the port would pass for it otherwise. Fails when `child` exits first
/// or 60 s pass.
pub(crate) async fn wait_ready(
    name: &str,
    url: &str,
    child: &mut Child,
    log: &Path,
    log_from: u64,
) -> Result<()> {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "{name} exited with {status} before it was ready; last log lines:\n{}",
                log_tail(log)
            );
        }
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await {
            if r.status().is_success() && started(log, log_from) {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{name} was not ready within 60 s (log: {})", log.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether `log`, past byte `from`, has the runtime's "service started" line.
fn started(log: &Path, from: u64) -> bool {
    let text = std::fs::read(log).unwrap_or_default();
    let since = usize::try_from(from).unwrap_or(usize::MAX).min(text.len());
    String::from_utf8_lossy(&text[since..]).contains("service started")
}

/// How long a process gets to stop after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(20);

/// How a process sent SIGTERM ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stopped {
    /// From the signal to its exit (or to its kill).
    pub after: Duration,
    /// Whether it exited by itself with status 0 within [`STOP_GRACE`].
    pub cleanly: bool,
}

/// Stops `child` with SIGTERM and waits for it; kills it when it has not
/// stopped within [`STOP_GRACE`].
pub(crate) async fn terminate(child: &mut Child, name: &str) -> Stopped {
    let start = tokio::time::Instant::now();
    let Some(pid) = child.id() else {
        return Stopped {
            after: Duration::ZERO,
            cleanly: false,
        };
    };
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(status) => Stopped {
            after: start.elapsed(),
            cleanly: status.is_ok_and(|s| s.success()),
        },
        Err(_) => {
            eprintln!("{name} did not stop within {STOP_GRACE:?}, killing it");
            let _ = child.kill().await;
            Stopped {
                after: start.elapsed(),
                cleanly: false,
            }
        }
    }
}

/// Sends SIGSTOP or SIGCONT (`kill -STOP pid`).
pub async fn signal(name: &str, pid: u32) -> Result<()> {
    let status = tokio::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .await?;
    anyhow::ensure!(status.success(), "kill -{name} {pid} failed");
    Ok(())
}
