//! Network faults between the stack and its broker, in user space: a TCP
//! proxy in front of the stack's own broker, which advertises the proxy's
//! port, so every client (services, checker, CLI) reaches it only through
//! here. It passes bytes through, delays them (each chunk held for the delay
//! plus jitter, in order, throughput kept), stalls them (held until healed:
//! what total packet loss looks like to a client, its requests time out),
//! or cuts every connection (reset: clients reconnect). A stalled
//! connection can also be severed on the server's side only
//! ([`Proxy::sever`]): the server sees it end, as its TCP keepalive would
//! conclude of a peer behind a partition, while the client hears nothing
//! until the partition heals and then finds it closed, as a real client
//! finds a reset when its retransmissions reach the server again.
//!
//! Why not `tc netem` in a network namespace: the machines this runs on
//! have kernels without the `sch_netem` qdisc (no loadable modules). A proxy
//! gives the clients the same experience at the layer they see: late bytes,
//! silent peers, reset connections. Duplicated or reordered packets, which
//! netem also makes, never reach a client through TCP, so they have no
//! counterpart here.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result};
use rand::Rng as _;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch, Notify},
    task::JoinHandle,
    time::Instant,
};

/// What the proxy does to the bytes passing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    /// Each chunk arrives `delay` (plus up to `jitter`) later.
    Delay {
        delay: Duration,
        jitter: Duration,
    },
    /// Nothing passes until the mode changes.
    Stall,
}

/// A running proxy: listens on `port`, forwards to `upstream`.
pub struct Proxy {
    pub port: u16,
    mode: watch::Sender<Mode>,
    /// Bumped to cut every connection open at that moment.
    cuts: watch::Sender<u64>,
    /// Each open connection by the local port of its socket to the
    /// server (what the server reports as its client's port), with what
    /// severs it.
    open: Arc<Mutex<BTreeMap<u16, Control>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on 127.0.0.1:`port` (0 picks one) and forwards each
    /// connection to 127.0.0.1:`upstream`.
    pub async fn start(port: u16, upstream: u16) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("Failed to bind the network-fault proxy on {port}"))?;
        let port = listener.local_addr()?.port();
        let listener = Arc::new(listener);
        Ok(Self::serve(port, upstream, move || {
            let listener = listener.clone();
            async move {
                let (client, _) = listener.accept().await.ok()?;
                let _ = client.set_nodelay(true);
                Some(client)
            }
        }))
    }

    /// Listens on the Unix socket `path` (PostgreSQL's clients reach a
    /// server's socket directory so: `host=DIR` for `DIR/.s.PGSQL.5432`,
    /// while their password file is still looked up by the URL's host and
    /// port) and forwards each connection to 127.0.0.1:`upstream`; `port`
    /// is 0.
    pub async fn start_unix(path: &std::path::Path, upstream: u16) -> Result<Self> {
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path)
            .with_context(|| format!("Failed to bind the network-fault proxy on {}", path.display()))?;
        let listener = Arc::new(listener);
        Ok(Self::serve(0, upstream, move || {
            let listener = listener.clone();
            async move { Some(listener.accept().await.ok()?.0) }
        }))
    }

    /// Accepts clients with `accept` until it gives none, each forwarded
    /// to 127.0.0.1:`upstream`.
    fn serve<C, F, A>(port: u16, upstream: u16, accept: A) -> Self
    where
        C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
        F: std::future::Future<Output = Option<C>> + Send,
        A: Fn() -> F + Send + 'static,
    {
        let (mode, _) = watch::channel(Mode::Pass);
        let (cuts, _) = watch::channel(0u64);
        let (mode_rx, cuts_tx) = (mode.subscribe(), cuts.clone());
        let open: Arc<Mutex<BTreeMap<u16, Control>>> = Arc::default();
        let registry = open.clone();
        let accept = tokio::spawn(async move {
            while let Some(client) = accept().await {
                let (mode, cut, registry) = (mode_rx.clone(), cuts_tx.subscribe(), registry.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let _ = server.set_nodelay(true);
                    let local = server.local_addr().map_or(0, |a| a.port());
                    let control = Control {
                        sever: Arc::new(Notify::new()),
                        isolated: watch::channel(false).0,
                    };
                    lock(&registry).insert(local, control.clone());
                    // The connection's own mode: the proxy's, or a stall
                    // while it is isolated.
                    let (own_tx, own) = watch::channel(*mode.borrow());
                    let (mut global, mut isolated) = (mode, control.isolated.subscribe());
                    let steer = tokio::spawn(async move {
                        loop {
                            let effective = if *isolated.borrow_and_update() {
                                Mode::Stall
                            } else {
                                *global.borrow_and_update()
                            };
                            own_tx.send_replace(effective);
                            tokio::select! {
                                r = global.changed() => if r.is_err() { return },
                                r = isolated.changed() => if r.is_err() { return },
                            }
                        }
                    });
                    connection(client, server, own, cut, control.sever).await;
                    steer.abort();
                    lock(&registry).remove(&local);
                });
            }
        });
        Self {
            port,
            mode,
            cuts,
            open,
            accept,
        }
    }

    /// From now on, `mode`.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Closes every connection open now; new ones are accepted.
    pub fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }

    /// The local ports of the open connections' sockets to the server: the
    /// client ports the server sees (`pg_stat_activity.client_port`).
    pub fn upstream_ports(&self) -> Vec<u16> {
        lock(&self.open).keys().copied().collect()
    }

    /// Closes the server's side of the connection whose socket to the
    /// server has local port `port` (false when none has), as the server's
    /// keepalive ends a connection to a peer behind a partition. The
    /// client's side stays open and silent while the proxy stalls, and is
    /// closed once it passes again: the client learns of it only then.
    pub fn sever(&self, port: u16) -> bool {
        match lock(&self.open).get(&port) {
            Some(control) => {
                control.sever.notify_one();
                true
            }
            None => false,
        }
    }
}

/// What steers one connection apart from the rest.
#[derive(Clone)]
struct Control {
    sever: Arc<Notify>,
    /// Stalled alone while true, whatever the proxy's mode.
    isolated: watch::Sender<bool>,
}

impl Proxy {
    /// Stalls the connection whose socket to the server has local port
    /// `port` alone (`true`), as a middlebox that drops one connection's
    /// packets would, or lets it follow the proxy's mode again (`false`);
    /// false when no connection has that port.
    pub fn isolate(&self, port: u16, isolated: bool) -> bool {
        match lock(&self.open).get(&port) {
            Some(control) => {
                control.isolated.send_replace(isolated);
                true
            }
            None => false,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Both directions of one connection, until either side closes or a cut;
/// when severed (or ended by the server during a stall), the server's side
/// closes at once and the client's once the proxy no longer stalls.
async fn connection<C: tokio::io::AsyncRead + tokio::io::AsyncWrite>(
    client: C,
    server: TcpStream,
    mut mode: watch::Receiver<Mode>,
    mut cut: watch::Receiver<u64>,
    sever: Arc<Notify>,
) {
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut server_read, mut server_write) = server.into_split();
    let severed = {
        let up = direction(&mut client_read, &mut server_write, mode.clone());
        let down = direction(&mut server_read, &mut client_write, mode.clone());
        tokio::select! {
            _ = up => false,
            // The server ended it behind a partition (a timeout of its
            // own): the client cannot hear of it before the heal either.
            _ = down => *mode.borrow() == Mode::Stall,
            _ = cut.changed() => false,
            _ = sever.notified() => true,
        }
    };
    if severed {
        drop((server_read, server_write));
        // What the client sends until the heal is read and dropped (lost
        // with the connection); it hears nothing until then.
        let healed = async {
            while *mode.borrow_and_update() == Mode::Stall {
                if mode.changed().await.is_err() {
                    return;
                }
            }
        };
        let drained = async {
            let mut sink = vec![0u8; 64 * 1024];
            while let Ok(n) = client_read.read(&mut sink).await {
                if n == 0 {
                    return;
                }
            }
        };
        tokio::select! {
            _ = healed => {}
            _ = drained => {}
            _ = cut.changed() => {}
        }
    }
    // Dropping both halves of both sockets closes them.
}

/// Copies `from` to `to`, each chunk held as `mode` says; a reader and a
/// writer apart so a delay holds no later chunk behind an earlier one's
/// sleep (throughput stays, only latency grows).
async fn direction<R: tokio::io::AsyncRead + Unpin, W: tokio::io::AsyncWrite + Unpin>(
    from: &mut R,
    to: &mut W,
    mut mode: watch::Receiver<Mode>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = {
        let mode = mode.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match from.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let due = match *mode.borrow() {
                    Mode::Delay { delay, jitter } => {
                        let extra = if jitter.is_zero() {
                            Duration::ZERO
                        } else {
                            jitter.mul_f64(rand::rng().random::<f64>())
                        };
                        Instant::now() + delay + extra
                    }
                    Mode::Pass | Mode::Stall => Instant::now(),
                };
                if tx.send((due, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    };
    let writer = async move {
        let mut last_due = Instant::now();
        while let Some((due, bytes)) = rx.recv().await {
            // In order: a chunk never overtakes the one before it.
            last_due = last_due.max(due);
            tokio::time::sleep_until(last_due).await;
            while *mode.borrow_and_update() == Mode::Stall {
                if mode.changed().await.is_err() {
                    return;
                }
            }
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = reader => {}
        _ = writer => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server; returns its port.
    async fn echo() -> u16 {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        port
    }

    async fn round_trip(stream: &mut TcpStream, msg: &[u8]) -> Result<Duration> {
        let started = Instant::now();
        stream.write_all(msg).await?;
        let mut back = vec![0u8; msg.len()];
        stream.read_exact(&mut back).await?;
        anyhow::ensure!(back == msg, "echoed {back:?}");
        Ok(started.elapsed())
    }

    #[tokio::test]
    async fn passes_delays_stalls_and_cuts() -> Result<()> {
        let proxy = Proxy::start(0, echo().await).await?;
        let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).await?;
        let fast = round_trip(&mut s, b"ping").await?;
        assert!(fast < Duration::from_millis(100), "{fast:?}");

        proxy.set(Mode::Delay {
            delay: Duration::from_millis(150),
            jitter: Duration::ZERO,
        });
        // Both directions are held: at least twice the delay.
        let slow = round_trip(&mut s, b"delayed").await?;
        assert!(slow >= Duration::from_millis(300), "{slow:?}");

        proxy.set(Mode::Stall);
        s.write_all(b"held").await?;
        let mut back = [0u8; 4];
        let stalled = tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut back)).await;
        assert!(stalled.is_err(), "a stalled proxy let bytes through");
        proxy.set(Mode::Pass);
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back)).await??;
        assert_eq!(&back, b"held", "held bytes arrive once healed");

        proxy.cut();
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "the cut connection stayed open"
        );
        let mut again = TcpStream::connect(("127.0.0.1", proxy.port)).await?;
        round_trip(&mut again, b"new").await?;
        Ok(())
    }

    #[tokio::test]
    async fn a_severed_connection_ends_at_the_server_at_once_and_at_the_client_on_heal() -> Result<()> {
        // A server that reports when its peer closes.
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let upstream = listener.local_addr()?.port();
        let (closed_tx, mut closed) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, peer)) = listener.accept().await {
                let closed_tx = closed_tx.clone();
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = closed_tx.send(peer.port());
                });
            }
        });
        let proxy = Proxy::start(0, upstream).await?;
        let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).await?;
        round_trip(&mut s, b"ping").await?;
        let ports = proxy.upstream_ports();
        assert_eq!(ports.len(), 1, "{ports:?}");
        assert!(!proxy.sever(1), "no connection has port 1");

        proxy.set(Mode::Stall);
        assert!(proxy.sever(ports[0]));
        let at_server = tokio::time::timeout(Duration::from_secs(5), closed.recv()).await?;
        assert_eq!(at_server, Some(ports[0]), "the server saw its connection end");
        // The client hears nothing while the partition lasts.
        s.write_all(b"lost").await?;
        let mut back = [0u8; 4];
        let silent = tokio::time::timeout(Duration::from_millis(300), s.read(&mut back)).await;
        assert!(silent.is_err(), "the client heard something during the partition");
        assert!(proxy.upstream_ports().is_empty() || proxy.upstream_ports() == ports);

        proxy.set(Mode::Pass);
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "the severed connection stayed open after the heal: {closed:?}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn an_isolated_connection_stalls_alone() -> Result<()> {
        let proxy = Proxy::start(0, echo().await).await?;
        let mut a = TcpStream::connect(("127.0.0.1", proxy.port)).await?;
        round_trip(&mut a, b"a").await?;
        let port = proxy.upstream_ports()[0];
        let mut b = TcpStream::connect(("127.0.0.1", proxy.port)).await?;
        round_trip(&mut b, b"b").await?;
        assert!(proxy.isolate(port, true));
        a.write_all(b"held").await?;
        let mut back = [0u8; 4];
        let stalled = tokio::time::timeout(Duration::from_millis(300), a.read_exact(&mut back)).await;
        assert!(stalled.is_err(), "an isolated connection let bytes through");
        round_trip(&mut b, b"others pass").await?;
        assert!(proxy.isolate(port, false));
        tokio::time::timeout(Duration::from_secs(5), a.read_exact(&mut back)).await??;
        assert_eq!(&back, b"held");
        Ok(())
    }
}
