//! The open-loop sender: request i of a run is due at its start plus i
//! intervals, whatever happened before; each is sent without waiting for the
//! answers to earlier ones, and its latency counts from when it was due.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use serde_json::json;
use tokio::{sync::Notify, time::Instant};

use super::{follower::Sagas, Target};
use crate::{histogram, record};

/// The SKUs orders rotate through (the seed catalog stocks each generously).
const SKUS: [&str; 4] = ["SKU-MUG", "SKU-TSHIRT-M", "SKU-HOODIE-L", "SKU-BOTTLE"];

/// A request not answered within this long counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// More requests than this in flight means the system stopped answering.
const MAX_IN_FLIGHT: u64 = 20_000;

/// When a run's requests are due: `total` of them, request i at
/// `start + i * interval`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Schedule {
    pub(super) start: Instant,
    pub(super) interval: Duration,
    pub(super) total: u64,
}

impl Schedule {
    /// When request `i` is due: its intended start, which its latencies count from.
    fn due(&self, i: u64) -> Instant {
        self.start + self.interval.mul_f64(i as f64)
    }
}

/// Requests so far: sent, answered 201, failed (refused for too many in
/// flight included), and in flight.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) sent: AtomicU64,
    pub(super) accepted: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) in_flight: AtomicU64,
}

/// What a run's requests recorded, shared by their tasks.
pub(super) struct Answers {
    pub(super) counters: Counters,
    /// From the intended start of each accepted POST to its 201.
    pub(super) http_201: Mutex<Histogram<u64>>,
    /// The first five errors.
    pub(super) error_samples: Mutex<Vec<String>>,
}

impl Answers {
    /// Order due at `intended` was answered 201 at `answered`.
    fn accepted(&self, intended: Instant, answered: Instant) {
        record(
            &mut self.http_201.lock().unwrap_or_else(|e| e.into_inner()),
            answered.saturating_duration_since(intended),
        );
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// A request failed with `error`.
    fn failed(&self, error: String) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        let mut samples = self.error_samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() < 5 {
            samples.push(error);
        }
    }
}

/// Places a run's orders on its schedule and hands every accepted one to
/// the run's [`Sagas`].
pub(super) struct Sender {
    http: reqwest::Client,
    order_url: String,
    customer_tokens: Arc<Vec<String>>,
    pub(super) answers: Arc<Answers>,
    sagas: Sagas,
    /// Woken whenever a request is answered.
    done: Arc<Notify>,
}

impl Sender {
    pub(super) fn new(target: &Target, sagas: &Sagas) -> Self {
        Self {
            http: target.http.clone(),
            order_url: target.order_url.clone(),
            customer_tokens: target.customer_tokens.clone(),
            answers: Arc::new(Answers {
                counters: Counters::default(),
                http_201: Mutex::new(histogram()),
                error_samples: Mutex::new(Vec::new()),
            }),
            sagas: sagas.clone(),
            done: Arc::new(Notify::new()),
        }
    }

    /// Sends every request of `schedule` when it is due; returns once the
    /// last was sent, not answered.
    pub(super) async fn open_loop(&self, schedule: Schedule) {
        let mut i = 0u64;
        while i < schedule.total {
            tokio::time::sleep_until(schedule.due(i)).await;
            let now = Instant::now();
            while i < schedule.total {
                let intended = schedule.due(i);
                if intended > now {
                    break;
                }
                self.send(i, intended);
                i += 1;
            }
        }
    }

    /// Sends order `i`, due at `intended`, in a task of its own; with too
    /// many requests in flight it counts as an error and is not sent.
    fn send(&self, i: u64, intended: Instant) {
        let counters = &self.answers.counters;
        counters.sent.fetch_add(1, Ordering::Relaxed);
        if counters.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        let http = self.http.clone();
        let url = format!("{}/v1/orders", self.order_url);
        let answers = self.answers.clone();
        let sagas = self.sagas.clone();
        let done = self.done.clone();
        let body = order_body(i);
        let token = self.customer_tokens[(i % self.customer_tokens.len() as u64) as usize].clone();
        tokio::spawn(async move {
            let result = http
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                .json(&body)
                .timeout(REQUEST_TIMEOUT)
                .send()
                .await;
            let answered = Instant::now();
            match order_id(result).await {
                Ok(id) => {
                    answers.accepted(intended, answered);
                    sagas.accepted(id, intended);
                }
                Err(e) => answers.failed(e),
            }
            answers.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
            done.notify_one();
        });
    }

    /// Waits until every request is answered and every accepted saga ended,
    /// or `drain` passed.
    pub(super) async fn drain(&self, drain: Duration) {
        let drain_deadline = Instant::now() + drain;
        loop {
            let outstanding = {
                let t = self.sagas.lock();
                self.answers.counters.in_flight.load(Ordering::Relaxed) + t.pending.len() as u64
            };
            if outstanding == 0 || Instant::now() >= drain_deadline {
                break;
            }
            // Woken by answers; sagas end on the follower's side, so look again soon.
            let _ = tokio::time::timeout(Duration::from_millis(20), self.done.notified()).await;
        }
    }
}

/// The order id of a 201, else what went wrong.
async fn order_id(result: reqwest::Result<reqwest::Response>) -> Result<String, String> {
    match result {
        Ok(resp) if resp.status().as_u16() == 201 => match resp.json::<serde_json::Value>().await {
            Ok(v) => v["order_id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("201 without order_id: {v}")),
            Err(e) => Err(format!("unreadable 201: {e}")),
        },
        Ok(resp) => {
            let status = resp.status();
            Err(format!("{status}: {}", resp.text().await.unwrap_or_default()))
        }
        Err(e) => Err(format!("request failed: {e}")),
    }
}

fn order_body(i: u64) -> serde_json::Value {
    json!({
        "channel": "mobile",
        "items": [{"sku": SKUS[(i % 4) as usize], "quantity": 1}],
        "shipping_address": {"name": "Bench Customer", "line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "payment_method": "tok_visa",
    })
}
