//! The audit log: every state-changing call (POST, PUT, PATCH, DELETE) of
//! every service that reached a route, and every call of an internal route
//! (`/v1/internal/...`: a read of a payment token included) or an operator's
//! route (`/v1/admin/...`: a read of any customer's orders, messages or
//! dead letters, or of the log itself), and every read whose handler marks
//! it a [`PersonalRead`] (one customer's data shown to someone else), with
//! who made it (the token's
//! subject and scopes), what (method, route, path, a bounded excerpt of the
//! body with personal data and secrets redacted, and the body's size and
//! SHA-256), when, its request id and how it ended (`ok`, the error code, or
//! `abandoned`), and every failed authentication, in the append-only,
//! monthly partitioned `audit_log` table (migrations 0003 and 0007).
//! Operators read it with `GET /v1/admin/audit`.
//!
//! What it cannot be made to store: it runs inside the rate limit, the
//! bound on requests at once and the deadline (a refused request never
//! reaches it), only for matched routes (no 404 of the router), it keeps
//! at most [`EXCERPT`] bytes of a body, a 405 or 413 is counted and logged
//! but not stored, and failed authentications are stored at most
//! [`FAILED_AUTH_BURST`] at once per client, then counted.

mod list;
mod tap;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::{Method, StatusCode},
    middleware::Next,
    response::Response,
};
use omnisaga_auth::{AuthError, Principal};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::{
    edge::http::{ApiError, RequestId},
    edge::limits::{Guard, Limits},
};

pub(crate) use list::__path_list;
pub use list::{routes, AuditEntry, AuditPage};

static AUDIT_FAILURES: std::sync::LazyLock<prometheus::IntCounterVec> = std::sync::LazyLock::new(|| {
    crate::base::metrics::counter_vec(
        "omnisaga_audit_failures_total",
        "State-changing calls the audit log could not record",
        &[],
    )
});

static NOT_STORED: std::sync::LazyLock<prometheus::IntCounterVec> = std::sync::LazyLock::new(|| {
    crate::base::metrics::counter_vec(
        "omnisaga_audit_not_stored_total",
        "Calls the audit log counted but did not store: 405 and 413 (refused before a handler ran), 401 past the per-client bound",
        &["status"],
    )
});

/// The most of a redacted body an entry keeps.
pub const EXCERPT: usize = 8 * 1024;

/// Failed authentications stored per client at once; then one per
/// [`FAILED_AUTH_EVERY`].
pub const FAILED_AUTH_BURST: f64 = 10.0;
pub const FAILED_AUTH_EVERY: Duration = Duration::from_secs(6);

/// Longest an entry's insert may take before it is given up (counted in
/// `omnisaga_audit_failures_total` and logged).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Keys whose values never reach the log: personal data and secrets.
const REDACTED: [&str; 12] = [
    "payment_method",
    "name",
    "line1",
    "line2",
    "postal_code",
    "email",
    "phone",
    "token",
    "password",
    "secret",
    "authorization",
    "customer_id",
];

/// The prefix of the routes only services call (`/v1/internal/...`, e.g.
/// an order's payment token), whose every call is recorded, reads too.
pub const INTERNAL: &str = "/v1/internal/";

/// The prefix of the operators' routes (`/v1/admin/...`), whose every call
/// is recorded, reads too: they show any customer's data.
pub const ADMIN: &str = "/v1/admin/";

/// Put on its answer by a handler whose read showed one customer's data to
/// someone else (a customer's payments, an export of order facts): the call
/// is recorded as a write is.
#[derive(Debug, Clone, Copy)]
pub struct PersonalRead;

impl PersonalRead {
    /// `resp`, marked.
    pub fn mark(mut resp: Response) -> Response {
        resp.extensions_mut().insert(PersonalRead);
        resp
    }
}

/// Where entries go, and the bound on failed authentications per client.
pub struct Audit {
    pool: PgPool,
    failed_auth: Arc<Guard>,
}

impl Audit {
    pub fn new(pool: PgPool) -> Arc<Self> {
        let bound = Limits {
            rate_per_second: 1.0 / FAILED_AUTH_EVERY.as_secs_f64(),
            burst: FAILED_AUTH_BURST,
            ..Limits::default()
        };
        Arc::new(Self {
            failed_auth: Guard::new(bound, pool.clone()),
            pool,
        })
    }

    /// Records a request whose token was missing or proved nothing, as
    /// subject `-` with the reason, unless its client (the peer's address)
    /// has used its bound, in which case it is only counted.
    pub async fn failed_authentication(&self, failed: FailedAuthentication) {
        let FailedAuthentication { entry, client } = failed;
        if self
            .failed_auth
            .take(&format!("audit-401:{client}"))
            .await
            .is_err()
        {
            NOT_STORED.with_label_values(&["401"]).inc();
            return;
        }
        entry.store(&self.pool, 401, "unauthorized").await;
    }
}

/// A refused authentication, taken from its request before any await.
pub struct FailedAuthentication {
    entry: Entry,
    client: String,
}

impl FailedAuthentication {
    pub fn of(req: &Request, why: &AuthError) -> Self {
        let client = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
        let mut entry = Entry::of(req, "-".to_owned(), String::new());
        entry.payload = Some(json!({ "reason": why.to_string(), "client": client }));
        Self { entry, client }
    }
}

/// Route layer, inside the limits: records each state-changing call once
/// it is answered, or as `abandoned` when it is dropped before.
pub async fn record(State(audit): State<Arc<Audit>>, req: Request, next: Next) -> Response {
    let changes = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    // A call of an internal route (a payment token) or an operator's is
    // recorded, reads too; another read only when its handler marks its
    // answer a [`PersonalRead`].
    let path = req.uri().path();
    let always = changes || path.starts_with(INTERNAL) || path.starts_with(ADMIN);
    let Some(principal) = req.extensions().get::<Principal>().cloned() else {
        return next.run(req).await;
    };
    let scopes = principal
        .scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let entry = Entry::of(&req, principal.subject, scopes);
    if !always {
        let resp = next.run(req).await;
        if resp.extensions().get::<PersonalRead>().is_some() {
            let outcome = resp.extensions().get::<ApiError>().map_or("ok", |e| e.code);
            entry.store(&audit.pool, resp.status().as_u16(), outcome).await;
        }
        return resp;
    }
    let (parts, body) = req.into_parts();
    let (body, seen) = tap::tap(body);
    let mut pending = Pending {
        entry: Some(entry),
        pool: audit.pool.clone(),
        seen,
    };
    let resp = next.run(Request::from_parts(parts, body)).await;
    let outcome = resp.extensions().get::<ApiError>().map_or("ok", |e| e.code);
    pending.finish(resp.status(), outcome).await;
    resp
}

/// A call on its way: stored when answered, or as `abandoned` if dropped.
struct Pending {
    entry: Option<Entry>,
    pool: PgPool,
    seen: Arc<std::sync::Mutex<tap::Seen>>,
}

impl Pending {
    fn take(&mut self) -> Option<Entry> {
        let mut entry = self.entry.take()?;
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        entry.body_bytes = i64::try_from(seen.bytes).unwrap_or(i64::MAX);
        entry.body_sha256 = seen.sha256();
        entry.payload = excerpt(&seen);
        Some(entry)
    }

    async fn finish(&mut self, status: StatusCode, outcome: &str) {
        let Some(entry) = self.take() else { return };
        if matches!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::METHOD_NOT_ALLOWED
        ) {
            NOT_STORED.with_label_values(&[status.as_str()]).inc();
            tracing::info!(route = %entry.route, subject = %entry.subject, status = status.as_u16(),
                bytes_read = entry.body_bytes, "audit: refused before a handler ran; counted, not stored");
            return;
        }
        entry.store(&self.pool, status.as_u16(), outcome).await;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(entry) = self.take() {
            let pool = self.pool.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { entry.store(&pool, 503, "abandoned").await });
            }
        }
    }
}

/// One call, before its answer.
struct Entry {
    subject: String,
    scopes: String,
    method: String,
    route: String,
    path: String,
    request_id: String,
    payload: Option<Value>,
    body_bytes: i64,
    body_sha256: Option<String>,
}

impl Entry {
    fn of(req: &Request, subject: String, scopes: String) -> Self {
        Self {
            subject,
            scopes,
            method: req.method().to_string(),
            route: req
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", MatchedPath::as_str)
                .to_owned(),
            path: req.uri().path().to_owned(),
            request_id: req
                .extensions()
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .unwrap_or_default(),
            payload: None,
            body_bytes: 0,
            body_sha256: None,
        }
    }

    /// Inserts the entry within [`WRITE_TIMEOUT`]; a failure is counted and
    /// logged, never the caller's (a database that does not answer must not
    /// turn the handler's own answer into the request deadline's).
    async fn store(&self, pool: &PgPool, status: u16, outcome: &str) {
        let insert = sqlx::query(
            "INSERT INTO audit_log (subject, scopes, method, route, path, request_id, status, outcome,
                                    payload, body_bytes, body_sha256)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&self.subject)
        .bind(&self.scopes)
        .bind(&self.method)
        .bind(&self.route)
        .bind(&self.path)
        .bind(&self.request_id)
        .bind(i32::from(status))
        .bind(outcome)
        .bind(&self.payload)
        .bind(self.body_bytes)
        .bind(&self.body_sha256)
        .execute(pool);
        let inserted = match tokio::time::timeout(WRITE_TIMEOUT, insert).await {
            Ok(done) => done.map(|_| ()).map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", WRITE_TIMEOUT.as_millis())),
        };
        if let Err(e) = inserted {
            AUDIT_FAILURES.with_label_values::<&str>(&[]).inc();
            tracing::error!(error = %e, route = %self.route, "the audit log could not record a call");
        }
    }
}

/// What an entry keeps of a body: the redacted JSON whole when it is at
/// most [`EXCERPT`] bytes so, else its first [`EXCERPT`] bytes as text
/// (redacted before they were cut); of anything else only its size; of a
/// body over [`tap::KEPT`], nothing but size and hash.
fn excerpt(seen: &tap::Seen) -> Option<Value> {
    if seen.bytes == 0 {
        return None;
    }
    if !seen.whole() {
        return Some(json!({ "omitted": format!("larger than {} KiB", tap::KEPT / 1024) }));
    }
    let kept = redacted(&seen.first)?;
    let text = kept.to_string();
    if text.len() <= EXCERPT {
        return Some(kept);
    }
    let mut end = EXCERPT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(json!({ "truncated": true, "excerpt": &text[..end] }))
}

/// The body as the log keeps it: JSON with [`REDACTED`] values replaced
/// by `"***"`; of anything else only its size; nothing for no body.
fn redacted(body: &[u8]) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(mut v) => {
            redact(&mut v);
            Some(v)
        }
        Err(_) => Some(json!({ "unparsed_bytes": body.len() })),
    }
}

fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if REDACTED.contains(&key.to_ascii_lowercase().as_str()) {
                    *value = Value::String("***".into());
                } else {
                    redact(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
