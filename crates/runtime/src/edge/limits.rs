//! Limits on what one caller, and all of them together, may ask of a
//! service: a per-client rate limit (429 with `Retry-After`), a bound on the
//! requests served at once (503 `overloaded` beyond it, at once, instead of
//! a queue that grows until everything times out), and a deadline per
//! request (503 `timeout`). Body sizes, items per order and page sizes are
//! limited where the routes read them.
//!
//! The rate limit is kept in the service's database, so every instance of
//! a service behind a load balancer draws on one bucket per client: N
//! instances do not give a client N times its rate. The bound on requests
//! at once and the deadline protect one instance, and are its own.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    extract::{Request, State},
    http::{header::RETRY_AFTER, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use omnisaga_auth::{Principal, Scope};
use sqlx::PgPool;
use tokio::sync::Semaphore;

use crate::edge::http::ApiError;

/// The limits' settings (`HTTP_*`, see docs/configuration.md).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests one client (a token's subject) may make per second, on
    /// average, over all instances of the service.
    pub rate_per_second: f64,
    /// How many it may make at once after being idle.
    pub burst: f64,
    /// Requests one instance serves at once; more are refused at once.
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

/// What the limits need: the settings, the database holding the buckets,
/// and this instance's permits.
pub struct Guard {
    limits: Limits,
    pool: PgPool,
    in_flight: Semaphore,
    takes: AtomicU64,
}

/// Takes one token of `client`'s bucket (GCRA: the bucket is the time at
/// which it would be full again, `tat`; a request may go when that is at
/// most `tau` ahead, and moves it on by one interval). No row comes back
/// when the client must wait.
const TAKE: &str = "
    INSERT INTO rate_limits AS r (client, tat)
    VALUES ($1, extract(epoch FROM clock_timestamp()) + $2)
    ON CONFLICT (client) DO UPDATE
       SET tat = greatest(r.tat, excluded.tat - $2) + $2
     WHERE greatest(r.tat, excluded.tat - $2) - (excluded.tat - $2) <= $3
    RETURNING tat";

/// How long until `client` may make its next request.
const WAIT: &str = "
    SELECT tat - extract(epoch FROM clock_timestamp()) - $2 FROM rate_limits WHERE client = $1";

impl Guard {
    pub fn new(limits: Limits, pool: PgPool) -> Arc<Self> {
        Arc::new(Self {
            limits,
            pool,
            in_flight: Semaphore::new(limits.max_concurrent.max(1)),
            takes: AtomicU64::new(0),
        })
    }

    /// Takes a token of `client`'s bucket; when there is none, how long
    /// until there is. A database that cannot answer lets the request
    /// through: the request then meets the database itself, and fails or
    /// not on its own merits rather than on its bookkeeping.
    pub async fn take(&self, client: &str) -> Result<(), Duration> {
        let interval = 1.0 / self.limits.rate_per_second.max(f64::MIN_POSITIVE);
        let tau = (self.limits.burst - 1.0).max(0.0) * interval;
        if self.takes.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            // Buckets full again are as good as none.
            let _ = sqlx::query("DELETE FROM rate_limits WHERE tat < extract(epoch FROM clock_timestamp())")
                .execute(&self.pool)
                .await;
        }
        let taken = sqlx::query_scalar::<_, f64>(TAKE)
            .bind(client)
            .bind(interval)
            .bind(tau)
            .fetch_optional(&self.pool)
            .await;
        match taken {
            Ok(Some(_)) => Ok(()),
            Ok(None) => {
                let wait = sqlx::query_scalar::<_, f64>(WAIT)
                    .bind(client)
                    .bind(tau)
                    .fetch_optional(&self.pool)
                    .await;
                let seconds = match wait {
                    Ok(Some(s)) if s.is_finite() => s.max(0.0),
                    _ => interval,
                };
                Err(Duration::from_secs_f64(seconds))
            }
            Err(e) => {
                tracing::warn!(error = %e, "rate limit not checked: the database did not answer");
                Ok(())
            }
        }
    }
}

/// Middleware, after authentication: the caller's rate limit, then the
/// bound on requests at once, then the deadline. Operators' tokens and the
/// services' own identities (a token holding a service scope,
/// [`Scope::SERVICE`]: payment asking order for an order's payment method,
/// once per order) are not limited: a service's calls grow with the order
/// rate, and a customer's bucket would cap the saga at it. The bound on
/// requests at once and the deadline still hold for them.
pub async fn limit(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    if let Some(p) = req.extensions().get::<Principal>() {
        if !p.has(Scope::Admin) && !p.is_service() {
            if let Err(wait) = guard.take(&p.subject).await {
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
