//! The stack's trace viewer (`tools/trace-viewer`): the Jaeger UI and
//! query API over an in-memory OTLP receiver that every service exports to.

use std::{process::Stdio, time::Duration};

use anyhow::{Context, Result};
use tokio::process::{Child, Command};

use crate::{
    bin_dir,
    process::{open_log, wait_tcp},
    Stack, StackOptions,
};

/// Starts the trace viewer (UI and query API on `ui_port`, OTLP/gRPC on
/// `otlp_port`) with the stack's environment for `trace-viewer` (e.g.
/// `TRACES_MAX`), and waits until it accepts connections.
pub(crate) async fn spawn(options: &StackOptions, ui_port: u16, otlp_port: u16) -> Result<Child> {
    let log_path = options.dir.join("logs/trace-viewer.log");
    let log = open_log(&log_path)?;
    let mut viewer = Command::new(bin_dir()?.join("trace-viewer"))
        .env("TRACES_HTTP_ADDR", format!("127.0.0.1:{ui_port}"))
        .env("TRACES_OTLP_GRPC_ADDR", format!("127.0.0.1:{otlp_port}"))
        .envs(
            options
                .env
                .get("trace-viewer")
                .into_iter()
                .flatten()
                .map(|(k, v)| (k, v)),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("Failed to start the trace viewer (build it with `cargo build --bins`)")?;
    for port in [ui_port, otlp_port] {
        wait_tcp(
            &format!("127.0.0.1:{port}"),
            &mut viewer,
            &log_path,
            Duration::from_secs(30),
        )
        .await
        .context("the trace viewer did not start")?;
    }
    Ok(viewer)
}

impl Stack {
    /// Kills the trace viewer: services go on, their span exports fail.
    pub async fn kill_trace_viewer(&mut self) -> Result<()> {
        self.viewer.kill().await?;
        Ok(())
    }
}
