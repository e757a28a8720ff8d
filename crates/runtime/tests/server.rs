//! The HTTP server loop against real sockets: a client that sends its
//! headers a byte at a time is cut off after the header read timeout while
//! the service answers others meanwhile; connections beyond the cap wait
//! for a free one; a body sent slowly meets the request deadline.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use axum::{
    extract::ConnectInfo,
    routing::{get, post},
    Router,
};
use omnisaga_runtime::server;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

fn app() -> Router {
    Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/echo", post(|body: String| async move { body }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        )
}

async fn start(router: Router, settings: server::Settings) -> (SocketAddr, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    tokio::spawn(server::serve(listener, None, router, settings, token.clone()));
    (addr, token)
}

/// A GET of `/ok` on a fresh connection: the status line, or why none came.
async fn get_ok(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET /ok HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out.lines().next().unwrap_or_default().to_owned())
}

/// Whether the server has closed `s` (a read ends or fails) within `wait`.
async fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A 408 or similar before the close: keep reading.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_its_headers_slowly_is_cut_off_while_others_are_answered() {
    let settings = server::Settings {
        header_read_timeout: Duration::from_secs(1),
        max_connections: 256,
        ..server::Settings::default()
    };
    let (addr, token) = start(app(), settings).await;

    // 50 clients trickle a request line, one byte every 200 ms: 9 s for the
    // whole of it, so none finishes its headers within the timeout.
    let request = b"GET /ok HTTP/1.1\r\nhost: t\r\nx-slow: aaaaaaaaaaaaaaaaaa\r\n\r\n";
    let slow: Vec<_> = (0..50)
        .map(|_| {
            tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                let started = Instant::now();
                for b in request {
                    if s.write_all(&[*b]).await.is_err() {
                        break;
                    }
                    let mut buf = [0u8; 256];
                    // Waits 200 ms, or sees the server close the connection.
                    match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
                        _ => {}
                    }
                }
                closed_within(&mut s, Duration::from_secs(1))
                    .await
                    .then(|| started.elapsed())
            })
        })
        .collect();

    // Meanwhile the service answers others.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answered = tokio::time::timeout(Duration::from_secs(2), get_ok(addr)).await;
    assert!(
        matches!(&answered, Ok(Ok(line)) if line.contains("200")),
        "{answered:?}"
    );

    let mut still_open = 0;
    for client in slow {
        match client.await.unwrap() {
            Some(after) => assert!(after < Duration::from_secs(4), "cut off only after {after:?}"),
            None => still_open += 1,
        }
    }
    eprintln!("slow-header clients still open after the timeout: {still_open} of 50");
    assert_eq!(still_open, 0, "slow clients kept their connections");
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_carries_its_peers_address() {
    let (addr, token) = start(app(), server::Settings::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /peer HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("127.0.0.1"),
        "{out}"
    );
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_one() {
    let settings = server::Settings {
        header_read_timeout: Duration::from_secs(30),
        max_connections: 2,
        ..server::Settings::default()
    };
    let (addr, token) = start(app(), settings).await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    // The third is not served while two connections are open.
    let third = tokio::spawn(get_ok(addr));
    let pending = tokio::time::timeout(Duration::from_millis(500), async {
        while !third.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        pending.is_err(),
        "a third connection was served beyond the cap of 2"
    );
    // One closes: the third is served.
    first.shutdown().await.unwrap();
    drop(first);
    let line = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("the third connection was never served")
        .unwrap()
        .unwrap();
    assert!(line.contains("200"), "{line}");
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_slowly_meets_the_request_deadline() {
    let limits = omnisaga_runtime::limits::Limits {
        timeout: Duration::from_secs(1),
        ..Default::default()
    };
    // No caller, so no rate limit: the pool is never asked.
    let pool = sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
    let router = app().layer(axum::middleware::from_fn_with_state(
        omnisaga_runtime::limits::Guard::new(limits, pool),
        omnisaga_runtime::limits::limit,
    ));
    let (addr, token) = start(router, server::Settings::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    for _ in 0..100 {
        if s.write_all(b"a").await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    token.cancel();
}
