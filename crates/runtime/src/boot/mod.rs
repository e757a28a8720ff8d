//! The top layer: what a service does at start and stop. Configuration
//! read from the environment, JSON logs and traces, graceful shutdown, and
//! [`service::Base`], which connects, migrates, starts the relay, the
//! consumers and the HTTP server, and stops them on one token.

pub mod cli;
pub mod config;
pub mod logs;
pub mod service;
pub mod shutdown;
pub mod telemetry;
