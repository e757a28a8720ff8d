//! `GET /v1/admin/audit`: the log, newest first, filtered, a page at a time.

use axum::{
    extract::{Query, State},
    routing::get,
    Json, Router,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgPool, Row};

use crate::edge::http::ApiError;

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
    /// `ok`, the error code answered, or `abandoned` (dropped before an
    /// answer: its deadline passed, or the client went away).
    pub outcome: String,
    /// The request body with personal data and secrets redacted, whole
    /// when it is at most 8 KiB so, else `{truncated, excerpt}`; for a body
    /// that is not JSON its size; for one over 64 KiB `{omitted}`; null for none.
    pub payload: Option<Value>,
    /// How many bytes of body the service read.
    pub body_bytes: i64,
    /// Their SHA-256, in hex; null for no body.
    pub body_sha256: Option<String>,
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
        (status = 422, description = "validation_failed: limit out of range", body = crate::edge::http::ErrorBody),
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
        "SELECT id, at, subject, scopes, method, route, path, request_id, status, outcome, payload,
                body_bytes, body_sha256
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
            body_bytes: r.get("body_bytes"),
            body_sha256: r.get("body_sha256"),
        })
        .collect();
    let next_cursor = more.then(|| items.last().map(|i| i.id)).flatten();
    Ok(Json(AuditPage { items, next_cursor }))
}
