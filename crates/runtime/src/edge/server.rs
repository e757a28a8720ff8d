//! The HTTP server loop: HTTP/1.1 connections over a plain or TLS listener,
//! each with a deadline for its request headers, at most a set number at
//! once, each closed after a set age, and all finished gracefully on
//! shutdown.
//!
//! A client that sends half a request line, or keeps a connection idle, is
//! closed after the header read timeout (the clock runs from the
//! connection's opening, and again from each answer, to the end of the
//! next request's headers). A request body is read by the handler, inside
//! the request deadline (`HTTP_REQUEST_TIMEOUT_MS`, [`crate::edge::limits`]), so a
//! body sent slowly is answered 503 `timeout` and its connection closed.
//! Beyond the connection cap the listener stops accepting: the kernel's
//! backlog holds new connections until one closes. Each request carries
//! its peer's address as `ConnectInfo` (the audit log bounds failed
//! authentications per client), over plain TCP and TLS alike.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request},
    Router,
};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// The server's limits (`HTTP_HEADER_READ_TIMEOUT_MS`,
/// `HTTP_MAX_CONNECTIONS`, `HTTP_CONNECTION_MAX_AGE_SECS`; see
/// docs/configuration.md).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Longest from a connection's opening, or from its previous answer, to
    /// the end of the next request's headers.
    pub header_read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Age after which a connection is closed once its request in flight,
    /// if any, is answered (the client reconnects, maybe to another instance).
    pub connection_max_age: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            connection_max_age: Duration::from_secs(300),
        }
    }
}

/// Serves `router` on the connections of `listener` until `shutdown`, then
/// waits for the open connections to finish their requests.
pub async fn run<L>(mut listener: L, router: Router, settings: Settings, shutdown: CancellationToken)
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let max = settings.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let mut warned: Option<Instant> = None;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if warned.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(
                        max_connections = max,
                        "connection limit reached, new connections wait"
                    );
                    warned = Some(Instant::now());
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                }
            }
        };
        let (io, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        tokio::spawn(connection(
            io,
            peer,
            router.clone(),
            settings,
            shutdown.clone(),
            permit,
        ));
    }
    drop(listener);
    // Every connection holds a slot until it ends.
    let _ = slots.acquire_many(max as u32).await;
}

/// One connection, served until the client closes it, its headers come too
/// slowly, it reaches its age, or the service stops.
async fn connection<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    settings: Settings,
    shutdown: CancellationToken,
    _slot: OwnedSemaphorePermit,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let aged = tokio::time::sleep(settings.connection_max_age);
    let mut aged = std::pin::pin!(aged);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended");
                }
                break;
            }
            _ = shutdown.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = &mut aged, if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Serves `router` until `shutdown`, finishing in-flight requests; over
/// TLS when `tls` is given; within the limits of `settings`
/// ([`crate::edge::server`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    settings: Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    match tls {
        Some(acceptor) => {
            let listener = crate::edge::tls::TlsListener::new(listener, acceptor)?;
            run(listener, router, settings, shutdown).await
        }
        None => run(listener, router, settings, shutdown).await,
    }
    Ok(())
}
