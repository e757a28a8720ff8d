//! Limits on what one caller, and all of them together, may ask of a
//! service: a per-client rate limit (429 with `Retry-After`), a bound on the
//! requests served at once (503 `overloaded` beyond it, at once, instead of
//! a queue that grows until everything times out), and a deadline per
//! request (503 `timeout`). Body sizes, items per order and page sizes are
//! limited where the routes read them.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{Request, State},
    http::{header::RETRY_AFTER, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use omnisaga_auth::{Principal, Scope};
use tokio::sync::Semaphore;

use crate::http::ApiError;

/// The limits' settings (`HTTP_*`, see the README's configuration table).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests one client (a token's subject) may make per second, on average.
    pub rate_per_second: f64,
    /// How many it may make at once after being idle.
    pub burst: f64,
    /// Requests served at once; more are refused at once.
    pub max_concurrent: usize,
    /// Longest a request may take.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rate_per_second: 50.0,
            burst: 100.0,
            max_concurrent: 512,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The state the limits keep: each client's bucket and the permits.
pub struct Guard {
    limits: Limits,
    buckets: Mutex<HashMap<String, Bucket>>,
    in_flight: Semaphore,
}

impl Guard {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            buckets: Mutex::new(HashMap::new()),
            in_flight: Semaphore::new(limits.max_concurrent.max(1)),
        })
    }

    /// Takes a token of `client`'s bucket; when there is none, how long
    /// until there is.
    fn take(&self, client: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 100_000 {
            // Full buckets are as good as none: forget them.
            let (rate, burst) = (self.limits.rate_per_second, self.limits.burst);
            buckets.retain(|_, b| b.level(now, rate, burst) < burst);
        }
        let bucket = buckets.entry(client.to_owned()).or_insert(Bucket {
            tokens: self.limits.burst,
            at: now,
        });
        bucket.take(now, self.limits.rate_per_second, self.limits.burst)
    }
}

/// A token bucket: `tokens` as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn level(&self, now: Instant, rate: f64, burst: f64) -> f64 {
        (self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * rate).min(burst)
    }

    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> Result<(), Duration> {
        self.tokens = self.level(now, rate, burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / rate.max(f64::MIN_POSITIVE),
            ))
        }
    }
}

/// Middleware, after authentication: the caller's rate limit (operators'
/// tokens are not limited), then the bound on requests at once, then the
/// deadline.
pub async fn limit(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    if let Some(p) = req.extensions().get::<Principal>() {
        if !p.has(Scope::Admin) {
            if let Err(wait) = guard.take(&p.subject, Instant::now()) {
                return rate_limited(wait);
            }
        }
    }
    let Ok(_permit) = guard.in_flight.try_acquire() else {
        let mut resp = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests at once; retry shortly",
        )
        .into_response();
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    };
    match tokio::time::timeout(guard.limits.timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than {} ms; retry later",
                guard.limits.timeout.as_millis()
            ),
        )
        .into_response(),
    }
}

fn rate_limited(wait: Duration) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut resp = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests from this client; retry in {seconds} s"),
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        resp.headers_mut().insert(RETRY_AFTER, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(rate: f64, burst: f64) -> Arc<Guard> {
        Guard::new(Limits {
            rate_per_second: rate,
            burst,
            ..Limits::default()
        })
    }

    #[test]
    fn a_client_gets_its_burst_then_its_rate() {
        let g = guard(10.0, 3.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(g.take("a", t0), Ok(()));
        }
        let wait = g.take("a", t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        assert!(g.take("a", t0 + Duration::from_millis(50)).is_err());
        assert_eq!(g.take("a", t0 + Duration::from_millis(150)), Ok(()));
    }

    #[test]
    fn clients_have_buckets_of_their_own_that_refill_to_the_burst_only() {
        let g = guard(1.0, 2.0);
        let t0 = Instant::now();
        assert!(g.take("a", t0).is_ok() && g.take("a", t0).is_ok());
        assert!(g.take("a", t0).is_err());
        assert!(g.take("b", t0).is_ok(), "b is not a");
        let later = t0 + Duration::from_secs(3600);
        assert!(g.take("a", later).is_ok() && g.take("a", later).is_ok());
        assert!(
            g.take("a", later).is_err(),
            "an hour idle still gives only the burst"
        );
    }
}
