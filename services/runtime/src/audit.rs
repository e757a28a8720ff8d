//! The audit log: every state-changing call (POST, PUT, PATCH, DELETE) of
//! every service, and every call of an internal route (a read of a payment
//! token included), with who made it (the token's subject and scopes), what
//! (method, route, path, the body with personal data and secrets redacted),
//! when, its request id and how it ended (`ok` or the error code), in the
//! append-only `audit_log` table (migrations/0003_audit.sql). Operators read
//! it with `GET /v1/admin/audit`.

use axum::{
    body::{to_bytes, Body},
    extract::{MatchedPath, Query, Request, State},
    http::{Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use chrono::{DateTime, Utc};
use omnisaga_auth::Principal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{PgPool, Row};

use crate::http::{ApiError, RequestId};

static AUDIT_FAILURES: std::sync::LazyLock<prometheus::IntCounterVec> = std::sync::LazyLock::new(|| {
    crate::metrics::counter_vec(
        "omnisaga_audit_failures_total",
        "State-changing calls the audit log could not record",
        &[],
    )
});

/// Largest body read for the log: beyond it the call is refused (no route
/// takes more: a batch import takes 4 MiB, the order API 64 KiB).
const MAX_BODY: usize = crate::batch::MAX_BYTES;

/// The prefix of the routes only services call (`/v1/internal/...`, e.g.
/// an order's payment token), whose every call is recorded, reads too.
pub const INTERNAL: &str = "/v1/internal/";

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

/// Middleware, after authentication: records each state-changing call once
/// it is answered.
pub async fn record(State(pool): State<PgPool>, req: Request, next: Next) -> Response {
    let changes = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    // A read of an internal route (a payment token) is recorded too.
    if !changes && !req.uri().path().starts_with(INTERNAL) {
        return next.run(req).await;
    }
    let Some(principal) = req.extensions().get::<Principal>().cloned() else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is too large",
        )
        .into_response();
    };
    let entry = Entry {
        subject: principal.subject.clone(),
        scopes: principal
            .scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        method: parts.method.to_string(),
        route: parts
            .extensions
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str)
            .to_owned(),
        path: parts.uri.path().to_owned(),
        request_id: parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        payload: redacted(&bytes),
    };
    let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let outcome = resp.extensions().get::<ApiError>().map_or("ok", |e| e.code);
    if let Err(e) = entry.insert(&pool, resp.status().as_u16(), outcome).await {
        AUDIT_FAILURES.with_label_values::<&str>(&[]).inc();
        tracing::error!(error = %e, route = %entry.route, "the audit log could not record a call");
    }
    resp
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
}

impl Entry {
    async fn insert(&self, pool: &PgPool, status: u16, outcome: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO audit_log (subject, scopes, method, route, path, request_id, status, outcome, payload)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
        .execute(pool)
        .await?;
        Ok(())
    }
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

/// `GET /v1/admin/audit` (operators'; the service adds the scope check).
pub fn routes(pool: PgPool) -> Router {
    Router::new().route("/v1/admin/audit", get(list)).with_state(pool)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Only this subject's calls (a token's `sub`).
    subject: Option<String>,
    /// Only calls of this method (any case).
    method: Option<String>,
    /// Only calls of this route, as the router names it (`/v1/orders/{id}/cancel`).
    route: Option<String>,
    /// Only this outcome: `ok` or an error code.
    outcome: Option<String>,
    /// Only calls at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Entries per page, 1 to 500 (50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// The previous page's `next_cursor`: entries older than it.
    cursor: Option<i64>,
}

/// One state-changing call.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The token's subject.
    pub subject: String,
    /// The token's scopes, space-separated.
    pub scopes: String,
    pub method: String,
    pub route: String,
    pub path: String,
    pub request_id: String,
    pub status: i32,
    /// `ok`, or the error code answered.
    pub outcome: String,
    /// The request body with personal data and secrets redacted.
    pub payload: Option<Value>,
}

/// A page of the audit log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub items: Vec<AuditEntry>,
    /// The `cursor` of the next (older) page; null on the last.
    pub next_cursor: Option<i64>,
}

/// Audit log
///
/// Every state-changing call to this service (who, what, when, outcome, the body redacted), newest first, filtered, a page at a time.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "operations", params(AuditQuery),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "a page of entries", body = AuditPage),
        (status = 422, description = "validation_failed: limit out of range", body = crate::http::ErrorBody),
    ))]
pub(crate) async fn list(
    State(pool): State<PgPool>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::validation("limit must be between 1 and 500"));
    }
    let rows = sqlx::query(
        "SELECT id, at, subject, scopes, method, route, path, request_id, status, outcome, payload
         FROM audit_log
         WHERE ($1::text IS NULL OR subject = $1) AND ($2::text IS NULL OR method = $2)
           AND ($3::text IS NULL OR route = $3) AND ($4::text IS NULL OR outcome = $4)
           AND ($5::timestamptz IS NULL OR at >= $5) AND ($6::bigint IS NULL OR id < $6)
         ORDER BY id DESC LIMIT $7",
    )
    .bind(&q.subject)
    .bind(q.method.as_deref().map(str::to_ascii_uppercase))
    .bind(&q.route)
    .bind(&q.outcome)
    .bind(q.since)
    .bind(q.cursor)
    .bind(limit + 1)
    .fetch_all(&pool)
    .await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<AuditEntry> = rows
        .iter()
        .take(limit as usize)
        .map(|r| AuditEntry {
            id: r.get("id"),
            at: r.get("at"),
            subject: r.get("subject"),
            scopes: r.get("scopes"),
            method: r.get("method"),
            route: r.get("route"),
            path: r.get("path"),
            request_id: r.get("request_id"),
            status: r.get("status"),
            outcome: r.get("outcome"),
            payload: r.get("payload"),
        })
        .collect();
    let next_cursor = more.then(|| items.last().map(|i| i.id)).flatten();
    Ok(Json(AuditPage { items, next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_data_and_secrets_are_redacted_everywhere_in_a_body() {
        let body = json!({
            "channel": "mobile",
            "items": [{"sku": "SKU-MUG", "quantity": 2}],
            "shipping_address": {"name": "Ada", "line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"},
            "payment_method": "tok_visa",
            "nested": [{"Token": "abc"}],
        });
        let kept = redacted(body.to_string().as_bytes()).unwrap();
        assert_eq!(kept["shipping_address"]["name"], "***");
        assert_eq!(kept["shipping_address"]["line1"], "***");
        assert_eq!(kept["shipping_address"]["postal_code"], "***");
        assert_eq!(kept["shipping_address"]["city"], "Berlin");
        assert_eq!(kept["payment_method"], "***");
        assert_eq!(kept["nested"][0]["Token"], "***");
        assert_eq!(kept["items"], body["items"]);
        assert_eq!(redacted(b"not json"), Some(json!({"unparsed_bytes": 8})));
        assert_eq!(redacted(b""), None);
    }
}
