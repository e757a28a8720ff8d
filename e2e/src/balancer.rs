//! A load balancer for a service run as several instances: a TCP listener
//! on the service's address that hands each new connection to the next
//! instance in turn, passing over one that refuses (killed, or not started
//! yet), as a layer-4 balancer with connect-time health checks does. Kept
//! connections stay with their instance until it closes them; an HTTP
//! client then connects again and lands on another. Nothing about a
//! request is sticky, so whatever an instance must share with the others
//! (idempotency, rate limits, deadlines) has to be in the database.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use anyhow::{Context, Result};
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// A running balancer; stops accepting when dropped.
pub struct Balancer {
    pub port: u16,
    accept: JoinHandle<()>,
}

impl Balancer {
    /// Takes over `listener` and spreads its connections over `backends`
    /// (ports on 127.0.0.1).
    pub fn start(listener: std::net::TcpListener, backends: Vec<u16>) -> Result<Self> {
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let listener = TcpListener::from_std(listener).context("Failed to listen for the load balancer")?;
        let backends = Arc::new(backends);
        let next = Arc::new(AtomicUsize::new(0));
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (backends, next) = (backends.clone(), next.clone());
                tokio::spawn(async move {
                    if let Some(server) = connect(&backends, &next).await {
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        let (mut client, mut server) = (client, server);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                    // No instance took it: dropping the client's socket closes it.
                });
            }
        });
        Ok(Self { port, accept })
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The next instance, in turn, that accepts a connection; `None` when none does.
async fn connect(backends: &[u16], next: &AtomicUsize) -> Option<TcpStream> {
    let first = next.fetch_add(1, Ordering::Relaxed);
    for i in 0..backends.len() {
        let port = backends[(first + i) % backends.len()];
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
}
