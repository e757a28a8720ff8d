//! HTTP plumbing: the one JSON error envelope `{code, message, request_id,
//! details}`, a JSON extractor whose rejections use the envelope, and the
//! fallback for unknown routes. The request-id and trace-context middleware
//! (which also logs each error once) is [`crate::edge::context`]; the
//! `/healthz` and `/readyz` endpoints are [`crate::edge::health`].

use std::any::Any;

use axum::{
    extract::{rejection::JsonRejection, FromRequest, Request},
    http::{header::HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};
use tower_http::catch_panic::CatchPanicLayer;

/// The request id of the current request (`X-Request-Id`, or generated).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// An API error; rendered as the JSON envelope with the request id filled in.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Box<Value>>,
    /// What went wrong underneath: logged by the middleware, never returned.
    pub cause: Option<String>,
    /// The `WWW-Authenticate` challenge of a 401 or 403.
    pub challenge: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            cause: None,
            challenge: None,
        }
    }
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", message)
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 401: no token, or one that proves nothing (`why`).
    pub fn unauthorized(why: &omnisaga_auth::AuthError) -> Self {
        let challenge = match why {
            omnisaga_auth::AuthError::Missing => r#"Bearer realm="omnisaga""#.to_owned(),
            other => {
                format!(r#"Bearer realm="omnisaga", error="invalid_token", error_description="{other}""#)
            }
        };
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("authentication required: {why}"),
        );
        e.challenge = Some(challenge);
        e
    }
    /// 403: a valid token without `scope`.
    pub fn forbidden(scope: omnisaga_auth::Scope) -> Self {
        let mut e = Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs the {scope} scope, which the token does not grant"),
        );
        e.challenge = Some(format!(
            r#"Bearer realm="omnisaga", error="insufficient_scope", scope="{scope}""#
        ));
        e
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    /// A failure the caller cannot fix; the cause is logged, never returned.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error").caused_by(cause)
    }
    pub fn caused_by(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(format!("{cause:#}"));
        self
    }
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }
    pub(crate) fn body(&self, request_id: &str) -> Value {
        let body = ErrorBody {
            code: self.code.to_owned(),
            message: self.message.clone(),
            request_id: request_id.to_owned(),
            details: self.details.as_deref().cloned(),
        };
        serde_json::to_value(body).unwrap_or_else(|_| json!({"code": self.code}))
    }
}

/// Every error answer's body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// Stable machine-readable code, see schemas/errors.json.
    pub code: String,
    pub message: String,
    /// The request's X-Request-Id.
    pub request_id: String,
    /// For validation_failed: {fields: [{field, problem}]}; for unknown_sku: {skus: [...]}; for a refused batch: {rows, invalid_rows, problems (how many), errors: [{line, field, problem}]}.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body(""))).into_response();
        if let Some(v) = self
            .challenge
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            resp.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, v);
        }
        resp.extensions_mut().insert(self);
        resp
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "service temporarily unavailable, retry later",
            )
            .caused_by(format_args!("database unavailable: {e}")),
            other => Self::internal(other),
        }
    }
}

/// `Json<T>` whose rejections (bad JSON, wrong content type, body too large)
/// are [`ApiError`]s.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// A JSON body read as `ApiJson` reads it once its `Content-Type` is
/// JSON: the same value or the same error (for the fuzz targets, which hold
/// every refusal to a documented 4xx code).
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    Json::<T>::from_bytes(body)
        .map(|Json(v)| v)
        .map_err(json_rejection)
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match &r {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json",
        ),
        JsonRejection::JsonDataError(e) if e.body_text().contains("unknown field") => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_field",
            format!("the body has a field this API does not take: {}", e.body_text()),
        ),
        JsonRejection::JsonDataError(e) => {
            ApiError::validation(format!("invalid request body: {}", e.body_text()))
        }
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::bad_request("malformed_json", "request body is not valid JSON")
        }
        _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is too large",
        ),
        _ => ApiError::bad_request("bad_request", r.body_text()),
    }
}

/// The layer that answers a handler's panic with a 500 `internal` error
/// (its message logged with the request, never returned), where the server
/// would otherwise drop the connection without an answer. Inside the
/// request context, so the answer carries the request id and is counted.
pub fn catch_panics() -> CatchPanicLayer<fn(Box<dyn Any + Send + 'static>) -> Response> {
    CatchPanicLayer::custom(panicked as fn(Box<dyn Any + Send + 'static>) -> Response)
}

fn panicked(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    ApiError::internal(format_args!("the handler panicked: {what}")).into_response()
}

/// Fallback for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}
