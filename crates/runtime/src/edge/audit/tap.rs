//! A request body read through on its way to the handler: how many bytes
//! the service read, their SHA-256 and the first of them, taken as the
//! handler reads, so the audit log never buffers a body of its own and a
//! body the route refuses (413) costs it nothing.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use futures::StreamExt as _;
use sha2::{Digest, Sha256};

/// The most of a body kept to make the log's excerpt from.
pub(super) const KEPT: usize = 64 * 1024;

/// What passed through.
#[derive(Default)]
pub(super) struct Seen {
    /// Bytes read, all of them.
    pub bytes: u64,
    /// The first [`KEPT`] of them.
    pub first: Vec<u8>,
    hasher: Sha256,
}

impl Seen {
    fn take(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        self.hasher.update(chunk);
        let room = KEPT.saturating_sub(self.first.len());
        self.first.extend_from_slice(&chunk[..room.min(chunk.len())]);
    }

    /// Whether every byte read is in [`Seen::first`].
    pub fn whole(&self) -> bool {
        self.bytes == self.first.len() as u64
    }

    /// The SHA-256 of what was read, in hex; none for no body.
    pub fn sha256(&self) -> Option<String> {
        (self.bytes > 0).then(|| format!("{:x}", self.hasher.clone().finalize()))
    }
}

/// What the tap would have seen of `body`, read whole (for tests).
#[cfg(test)]
pub(super) fn seen(body: &[u8]) -> Seen {
    let mut seen = Seen::default();
    seen.take(body);
    seen
}

/// `body`, and what its reader will have read of it.
pub(super) fn tap(body: Body) -> (Body, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = seen.clone();
    let stream = body.into_data_stream().map(move |chunk| {
        if let Ok(bytes) = &chunk {
            sink.lock().unwrap_or_else(|e| e.into_inner()).take(bytes);
        }
        chunk
    });
    (Body::from_stream(stream), seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_the_reader_read_is_counted_hashed_and_kept_up_to_the_bound() {
        let big = vec![b'x'; KEPT + 10];
        let (body, seen) = tap(Body::from(big.clone()));
        let read = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        assert_eq!(read.len(), big.len());
        {
            let seen = seen.lock().unwrap();
            assert_eq!(seen.bytes, big.len() as u64);
            assert_eq!(seen.first.len(), KEPT);
            assert!(!seen.whole());
            assert_eq!(seen.sha256().unwrap(), format!("{:x}", Sha256::digest(&big)));
        }

        let (body, seen) = tap(Body::empty());
        axum::body::to_bytes(body, 10).await.unwrap();
        let seen = seen.lock().unwrap();
        assert!(seen.whole() && seen.sha256().is_none());
    }

    #[tokio::test]
    async fn a_reader_that_stops_at_its_limit_leaves_the_rest_unread() {
        let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(vec![0u8; 16 * 1024]));
        let (body, seen) = tap(Body::from_stream(futures::stream::iter(chunks)));
        assert!(axum::body::to_bytes(body, 1024).await.is_err());
        assert!(seen.lock().unwrap().bytes < 1 << 20);
    }
}
