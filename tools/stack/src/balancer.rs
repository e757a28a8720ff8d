//! A load balancer for a service run as several instances: a TCP listener
//! on the service's address that hands each new connection to the next
//! instance in turn, passing over one that refuses (killed, or not started
//! yet), as a layer-4 balancer with connect-time health checks does. Kept
//! connections stay with their instance until it closes them; an HTTP
//! client then connects again and lands on another. Nothing about a
//! request is sticky, so whatever an instance must share with the others
//! (idempotency, rate limits, deadlines) has to be in the database.
//!
//! Started with [`Balancer::start_on_readiness`] it also honours readiness,
//! as a Kubernetes Service does: it asks each instance's `/readyz` every
//! [`PROBE_EVERY`] and passes over one that failed it twice in a row (no
//! answer within 2 s, or not 200) until it answers 200 again.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::{Context, Result};
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// How often a readiness-honouring balancer asks each instance's `/readyz`.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);

/// A running balancer; stops accepting (and probing) when dropped.
pub struct Balancer {
    pub port: u16,
    accept: JoinHandle<()>,
    probe: Option<JoinHandle<()>>,
}

impl Balancer {
    /// Takes over `listener` and spreads its connections over `backends`
    /// (ports on 127.0.0.1).
    pub fn start(listener: std::net::TcpListener, backends: Vec<u16>) -> Result<Self> {
        let ready = Arc::new(backends.iter().map(|_| AtomicBool::new(true)).collect());
        Self::serve(listener, backends, ready, None)
    }

    /// As [`Balancer::start`], passing over instances that are not ready.
    pub fn start_on_readiness(listener: std::net::TcpListener, backends: Vec<u16>) -> Result<Self> {
        let ready: Arc<Vec<AtomicBool>> = Arc::new(backends.iter().map(|_| AtomicBool::new(true)).collect());
        let probe = tokio::spawn(probe(backends.clone(), ready.clone()));
        Self::serve(listener, backends, ready, Some(probe))
    }

    fn serve(
        listener: std::net::TcpListener,
        backends: Vec<u16>,
        ready: Arc<Vec<AtomicBool>>,
        probe: Option<JoinHandle<()>>,
    ) -> Result<Self> {
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let listener = TcpListener::from_std(listener).context("Failed to listen for the load balancer")?;
        let backends = Arc::new(backends);
        let next = Arc::new(AtomicUsize::new(0));
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (backends, next, ready) = (backends.clone(), next.clone(), ready.clone());
                tokio::spawn(async move {
                    if let Some(server) = connect(&backends, &ready, &next).await {
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        let (mut client, mut server) = (client, server);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                    // No instance took it: dropping the client's socket closes it.
                });
            }
        });
        Ok(Self { port, accept, probe })
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.accept.abort();
        if let Some(probe) = &self.probe {
            probe.abort();
        }
    }
}

/// Asks every backend's `/readyz` each [`PROBE_EVERY`]; two failures in a
/// row make it unready, one success ready again.
async fn probe(backends: Vec<u16>, ready: Arc<Vec<AtomicBool>>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client without TLS builds");
    let mut failures = vec![0u32; backends.len()];
    loop {
        for (i, port) in backends.iter().enumerate() {
            let answered = http
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == reqwest::StatusCode::OK);
            failures[i] = if answered { 0 } else { failures[i] + 1 };
            ready[i].store(failures[i] < 2, Ordering::Relaxed);
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// The next ready instance, in turn, that accepts a connection; `None` when
/// none does.
async fn connect(backends: &[u16], ready: &[AtomicBool], next: &AtomicUsize) -> Option<TcpStream> {
    let first = next.fetch_add(1, Ordering::Relaxed);
    for i in 0..backends.len() {
        let at = (first + i) % backends.len();
        if !ready[at].load(Ordering::Relaxed) {
            continue;
        }
        let port = backends[at];
        if let Ok(server) = TcpStream::connect(("127.0.0.1", port)).await {
            return Some(server);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server that answers every connection with `id` and closes it.
    async fn named(id: u8) -> (u16, JoinHandle<()>) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(&[id]).await;
            }
        });
        (port, task)
    }

    async fn ask(port: u16) -> Option<u8> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.ok()?;
        Some(b[0])
    }

    #[tokio::test]
    async fn connections_go_round_the_instances_and_pass_over_a_dead_one() {
        let (a, _ta) = named(1).await;
        let (b, _tb) = named(2).await;
        let (c, _tc) = named(3).await;
        let balancer =
            Balancer::start(std::net::TcpListener::bind("127.0.0.1:0").unwrap(), vec![a, b, c]).unwrap();
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(ask(balancer.port).await.unwrap());
        }
        seen.sort();
        assert_eq!(seen, [1, 1, 2, 2, 3, 3]);

        // An instance that is down: its port is bound but not listening, so
        // a connection to it is refused (and no other socket can take the
        // port meanwhile); the others take its turns.
        let down = tokio::net::TcpSocket::new_v4().unwrap();
        down.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let dead = down.local_addr().unwrap().port();
        let balancer = Balancer::start(
            std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
            vec![a, dead, c],
        )
        .unwrap();
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(ask(balancer.port).await.unwrap());
        }
        // A turn that meets the dead one goes to the next in line.
        seen.sort();
        assert_eq!(seen, [1, 1, 3, 3, 3, 3]);
    }

    /// An HTTP server answering every request with `status` (changeable)
    /// and the body `id`, then closing the connection.
    async fn http_named(id: u8, status: Arc<std::sync::atomic::AtomicU16>) -> (u16, JoinHandle<()>) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let status = status.load(Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let head =
                        format!("HTTP/1.1 {status} X\r\nContent-Length: 1\r\nConnection: close\r\n\r\n");
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(&[id]).await;
                });
            }
        });
        (port, task)
    }

    /// Which instance answered a request through the balancer.
    async fn ask_http(port: u16) -> Option<u8> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.ok()?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.ok()?;
        answer.last().copied()
    }

    /// Six requests through the balancer, sorted by who answered.
    async fn six(port: u16) -> Vec<u8> {
        let mut seen = Vec::new();
        for _ in 0..6 {
            if let Some(id) = ask_http(port).await {
                seen.push(id);
            }
        }
        seen.sort();
        seen
    }

    #[tokio::test]
    async fn on_readiness_it_passes_over_an_instance_that_is_not_ready_until_it_is() {
        use std::sync::atomic::AtomicU16;
        let ready_a = Arc::new(AtomicU16::new(200));
        let ready_b = Arc::new(AtomicU16::new(503));
        let (a, _ta) = http_named(1, ready_a).await;
        let (b, _tb) = http_named(2, ready_b.clone()).await;
        let balancer =
            Balancer::start_on_readiness(std::net::TcpListener::bind("127.0.0.1:0").unwrap(), vec![a, b])
                .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while six(balancer.port).await != [1; 6] {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the unready instance still got turns"
            );
            tokio::time::sleep(PROBE_EVERY).await;
        }
        ready_b.store(200, Ordering::Relaxed);
        while six(balancer.port).await != [1, 1, 1, 2, 2, 2] {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the instance ready again got no turns"
            );
            tokio::time::sleep(PROBE_EVERY).await;
        }
    }
}
