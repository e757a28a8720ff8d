//! What the live streams of one instance share: the fan-out of the events
//! any instance records to the streams of their orders and customers (read
//! by the instance's poller, `poll.rs`), and the bound on streams open at
//! once, which also tells the poller whether to run.
//!
//! A stream never trusts a [`Change`] to carry the event: it re-reads the
//! store after the position it last sent. So a change missed (a stream
//! lagging behind the fan-out) costs a re-read, never an event: on a lag,
//! or when the poller (re)starts ([`Change::Resync`]), and on a slow timer
//! besides ([`REREAD`]), each stream re-reads.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::http::{header::RETRY_AFTER, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use omnisaga_runtime::http::ApiError;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Live;

/// How often a stream re-reads the store even when nothing was heard.
pub const REREAD: Duration = Duration::from_secs(30);

/// What the poller read.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// An event was appended to this order's stream, of this customer.
    Appended { order_id: String, customer_id: String },
    /// Events may have been recorded unannounced: every stream re-reads.
    Resync,
}

/// The instance's fan-out and its open streams.
pub struct Feed {
    pub settings: Live,
    pub(super) changes: broadcast::Sender<Change>,
    open: Mutex<Open>,
    /// How many streams are open: the poller runs while there is one.
    pub(super) streams: watch::Sender<usize>,
    /// Cancelled when the service stops: every stream ends.
    pub closed: CancellationToken,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_customer: HashMap<String, usize>,
}

impl Feed {
    pub fn new(settings: Live) -> Arc<Self> {
        let (changes, _) = broadcast::channel(1024);
        Arc::new(Self {
            settings,
            changes,
            open: Mutex::new(Open::default()),
            streams: watch::Sender::new(0),
            closed: CancellationToken::new(),
        })
    }

    /// What the poller reads from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// A place for one more stream of `customer`, unless the customer's
    /// bound or the instance's is reached.
    pub fn open(self: &Arc<Self>, customer: &str) -> Result<Slot, Refused> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.settings.max_streams {
            return Err(Refused::Instance);
        }
        let mine = open.by_customer.entry(customer.to_owned()).or_default();
        if *mine >= self.settings.max_per_customer {
            return Err(Refused::Customer(self.settings.max_per_customer));
        }
        *mine += 1;
        open.total += 1;
        self.streams.send_replace(open.total);
        Ok(Slot {
            feed: self.clone(),
            customer: customer.to_owned(),
        })
    }
}

/// Why a stream was not opened.
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// The customer has this many open already: 429 `too_many_streams`.
    Customer(usize),
    /// The instance serves as many as it may: 503 `overloaded`.
    Instance,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let e = match self {
            Refused::Instance => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "too many live streams open on this instance; retry shortly",
            ),
            Refused::Customer(n) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!("at most {n} live streams at once per customer; close one first"),
            ),
        };
        let mut resp = e.into_response();
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("5"));
        resp
    }
}

/// One open stream's place, given back when the stream ends.
pub struct Slot {
    feed: Arc<Feed>,
    customer: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.feed.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        self.feed.streams.send_replace(open.total);
        if let Some(n) = open.by_customer.get_mut(&self.customer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_customer.remove(&self.customer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_bounded_per_customer_and_in_all() {
        let feed = Feed::new(Live {
            max_per_customer: 2,
            max_streams: 3,
            ..Live::default()
        });
        let a1 = feed.open("a").unwrap();
        let _a2 = feed.open("a").unwrap();
        assert_eq!(feed.open("a").err(), Some(Refused::Customer(2)));
        let _b1 = feed.open("b").unwrap();
        assert_eq!(feed.open("c").err(), Some(Refused::Instance));
        assert_eq!(
            Refused::Instance.into_response().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let resp = Refused::Customer(2).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[RETRY_AFTER], "5");
        drop(a1);
        assert!(feed.open("a").is_ok());
    }
}
