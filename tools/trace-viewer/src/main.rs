//! The trace viewer of the local stack: the real Jaeger UI and Jaeger's query
//! API (`/api/services`, `/api/traces/{id}`) served from an in-memory store
//! fed by an OTLP receiver on gRPC and on HTTP (`POST /v1/traces`, protobuf).
//! Keeps the most recent `TRACES_MAX` traces. The count is the only bound:
//! otlp-embedded 0.0.2 adds a trace's whole size to its memory estimate on
//! every span and never takes the old size off (schnellru's `remove` does not
//! tell its limiter), so a memory limit would soon drop every trace.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TRACES_HTTP_ADDR` | `127.0.0.1:16686` | UI, query API and OTLP/HTTP |
//! | `TRACES_OTLP_GRPC_ADDR` | `127.0.0.1:4317` | OTLP/gRPC receiver |
//! | `TRACES_MAX` | `2000` | traces kept, the oldest dropped first |

use std::{net::SocketAddr, sync::Arc};

use anyhow::{Context, Result};
use axum::{body::Bytes, extract::State, http::StatusCode, routing::post, Router};
use otlp_embedded::{
    proto::collector::trace::v1::ExportTraceServiceRequest, ui_app, Config, StateRef, TraceService,
    TraceServiceImpl, TraceServiceServer,
};
use prost::Message;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) => v.parse().map_err(|_| anyhow::anyhow!("{name}={v:?} is invalid")),
        Err(_) => Ok(default),
    }
}

/// OTLP/HTTP with a protobuf body, for exporters that do not speak gRPC.
async fn otlp_http(State(service): State<Arc<TraceServiceImpl>>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    match service.export(tonic::Request::new(request)).await {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let http_addr: SocketAddr = env_or("TRACES_HTTP_ADDR", SocketAddr::from(([127, 0, 0, 1], 16686)))?;
    let grpc_addr: SocketAddr = env_or("TRACES_OTLP_GRPC_ADDR", SocketAddr::from(([127, 0, 0, 1], 4317)))?;
    let state: StateRef = otlp_embedded::State::new(Config {
        max_length: env_or("TRACES_MAX", 2_000)?,
        max_memory_usage: usize::MAX,
    });

    let ingest = Arc::new(TraceServiceImpl::new(state.clone()));
    let app = Router::new()
        .route("/v1/traces", post(otlp_http))
        .with_state(ingest)
        .merge(ui_app(state.clone(), "/"));
    let listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("Failed to bind {http_addr}"))?;
    eprintln!("trace viewer: UI and query API on http://{http_addr}, OTLP/gRPC on {grpc_addr}, OTLP/HTTP on http://{http_addr}/v1/traces");

    let grpc = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(TraceServiceImpl::new(state)))
        .serve(grpc_addr);
    let http = axum::serve(listener, app);
    tokio::select! {
        r = grpc => r.context("the OTLP/gRPC receiver failed")?,
        r = http => r.context("the HTTP server failed")?,
        _ = tokio::signal::ctrl_c() => {},
    }
    Ok(())
}
