//! HTTP plumbing: the one JSON error envelope `{code, message, request_id,
//! details}`, the request-id and trace-context middleware (which also logs
//! each error once), a JSON extractor whose rejections use the envelope, and
//! the `/healthz` and `/readyz` endpoints (readiness is the database's; the
//! broker's state is a detail of it, `crate::probe`).

use std::{sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{rejection::JsonRejection, FromRequest, MatchedPath, Request, State},
    http::{header::HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::{config::KafkaConfig, event::TraceContext};

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
    fn body(&self, request_id: &str) -> Value {
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

/// Fallback for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// Whose trace context a request continues. Every API is a public edge: a
/// request starts a trace of its own and keeps the client's `traceparent`
/// as a span link, so no client can switch sampling off for a saga or merge
/// orders into one trace. Only a caller with a service identity (a token
/// holding a service scope, [`SERVICE_SCOPES`]) continues its trace, as the
/// services calling each other do.
#[derive(Clone, Default)]
pub struct TraceTrust {
    /// Checks the tokens; without it no request continues a trace.
    pub verifier: Option<Arc<omnisaga_auth::Verifier>>,
}

/// The scopes only services hold: their callers continue their traces.
pub const SERVICE_SCOPES: [omnisaga_auth::Scope; 2] = [
    omnisaga_auth::Scope::StockRead,
    omnisaga_auth::Scope::PaymentMethodsRead,
];

impl TraceTrust {
    /// Whether `req`'s bearer token is valid and holds a service scope.
    fn continues(&self, req: &Request) -> bool {
        let Some(verifier) = &self.verifier else {
            return false;
        };
        crate::auth::bearer(req)
            .and_then(|token| verifier.verify(token))
            .is_ok_and(|p| SERVICE_SCOPES.iter().any(|s| p.has(*s)))
    }
}

/// Middleware: request id and trace context in, request id out, one span per
/// request (probes and scrapes excepted), each error logged once, with its
/// cause, and the request id put in its body. The client's trace context is
/// continued or only linked as [`TraceTrust`] says.
pub async fn request_context(State(trust): State<TraceTrust>, mut req: Request, next: Next) -> Response {
    let given = crate::input::request_id(req.headers());
    let request_id = given
        .clone()
        .ok()
        .flatten()
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    if let Some(err) = given.err().or_else(|| crate::input::control_character(req.uri())) {
        let mut resp = err.into_response();
        if let Some(err) = resp.extensions_mut().remove::<ApiError>() {
            tracing::info!(code = err.code, message = %err.message, "request rejected");
            *resp.body_mut() = Body::from(err.body(&request_id).to_string());
        }
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        return resp;
    }
    let parent = {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        TraceContext {
            traceparent: header("traceparent"),
            tracestate: header("tracestate"),
        }
    };
    // Templates only, so span names and metric labels stay few whatever is asked.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    if matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics") {
        // Probes and scrapes every few seconds would crowd the traces out.
        let mut resp = next.run(req).await;
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        return resp;
    }
    let span = tracing::info_span!(
        "http",
        otel.name = %format!("{} {route}", req.method()),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %req.method(),
        http.route = %route,
        url.path = %req.uri().path(),
        request.id = %request_id,
        trace_id = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    if parent.trace_id().is_some() && trust.continues(&req) {
        parent.attach(&span);
    } else {
        parent.link(&span);
    }
    let trace = span.in_scope(TraceContext::current);
    if let Some(t) = trace.trace_id() {
        span.record("trace_id", t);
    }
    let (method, started) = (req.method().to_string(), std::time::Instant::now());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    req.extensions_mut().insert(trace);
    let mut resp = next.run(req).instrument(span.clone()).await;
    if (resp.status().is_client_error() || resp.status().is_server_error())
        && resp.extensions().get::<ApiError>().is_none()
        && !is_json(&resp)
    {
        resp = enveloped(resp).await;
    }
    span.record("http.response.status_code", resp.status().as_u16());
    let status = resp.status().as_u16().to_string();
    let m = crate::metrics::get();
    m.http_requests
        .with_label_values(&[route.as_str(), method.as_str(), status.as_str()])
        .inc();
    m.http_duration
        .with_label_values(&[route.as_str(), method.as_str(), status.as_str()])
        .observe(started.elapsed().as_secs_f64());
    if resp.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    if let Some(err) = resp.extensions_mut().remove::<ApiError>() {
        span.in_scope(|| {
            if err.status.is_server_error() {
                let cause = err.cause.as_deref().unwrap_or("");
                tracing::error!(code = err.code, status = err.status.as_u16(), error = cause, "request failed");
            } else {
                tracing::info!(code = err.code, status = err.status.as_u16(), message = %err.message, "request rejected");
            }
        });
        let (parts, _) = resp.into_parts();
        resp = Response::from_parts(parts, Body::from(err.body(&request_id).to_string()));
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// A refusal that is not an [`ApiError`] (an extractor's own: a path or
/// query parameter of the wrong form, a method the route does not take) as
/// the error envelope with a documented code, its headers (`Allow`) kept.
async fn enveloped(resp: Response) -> Response {
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let said = |fallback: &str| {
        if text.is_empty() {
            fallback.to_owned()
        } else {
            text.clone()
        }
    };
    let mut err = match parts.status {
        StatusCode::NOT_FOUND => ApiError::not_found(said("no such route")),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take this method (Allow lists those it takes)",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            said("request body is too large"),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            said("unsupported Content-Type"),
        ),
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::validation(said("the request is invalid")),
        status if status.is_server_error() => ApiError::internal(said("no cause given")),
        _ => ApiError::bad_request("bad_request", said("the request could not be read")),
    };
    err.status = parts.status;
    let mut out = err.into_response();
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// What `/readyz` checks: the database, which the API cannot serve
/// without. The broker's state is reported beside it and never makes the
/// service unready (see [`crate::probe`]).
#[derive(Clone)]
pub struct Readiness {
    pool: PgPool,
    broker: crate::probe::BrokerWatch,
    /// The relay's producer, whose fatal errors `/healthz` reports.
    producer: Option<crate::kafka::Producer>,
}

impl Readiness {
    pub fn new(pool: PgPool, kafka: &KafkaConfig) -> anyhow::Result<Self> {
        Ok(Self {
            pool,
            broker: crate::probe::BrokerWatch::new(kafka)?,
            producer: None,
        })
    }

    /// Reports `producer`'s fatal errors in `/healthz`.
    pub fn with_producer(self, producer: crate::kafka::Producer) -> Self {
        Self {
            producer: Some(producer),
            ..self
        }
    }

    async fn check(&self) -> Result<(), String> {
        tokio::time::timeout(
            Duration::from_secs(2),
            sqlx::query("SELECT 1").execute(&self.pool),
        )
        .await
        .map_err(|_| "database: timeout".to_owned())?
        .map_err(|e| format!("database: {e}"))?;
        Ok(())
    }
}

/// `/healthz` (the process is alive) and `/readyz` (the database reachable,
/// the broker's state beside it).
pub fn health_routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

/// What `/healthz` and `/readyz` say.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` (alive), `ready`, or `unavailable` (with the reason).
    #[schema(pattern = "^(ok|ready|unavailable)$")]
    pub status: &'static str,
    /// What is wrong, and why: the database unreachable (`/readyz`), the
    /// relay's producer broken (`/healthz`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `/readyz` only: the broker as last seen, `reachable`, `unreachable:
    /// <why>` or `not checked yet`. It does not make the service unready:
    /// the outbox keeps what the API accepts until the broker is back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
    /// `/healthz` only, once it happened: the relay's Kafka producer had a
    /// fatal error and was replaced (how often, and the last error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub producer: Option<String>,
}

/// Liveness
///
/// The process is alive and serving HTTP, and its relay can publish. A
/// Kafka producer that had a fatal error is replaced and reported in
/// `producer`; while one stays broken (its replacement failed) the answer
/// is 503, so the orchestrator restarts the instance.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses(
        (status = 200, description = "alive", body = Health),
        (status = 503, description = "the relay's producer had a fatal error and could not be replaced", body = Health),
    ))]
pub(crate) async fn healthz(State(r): State<Readiness>) -> Response {
    let health = r.producer.as_ref().map(|p| p.health()).unwrap_or_default();
    let producer = health.last_fatal.as_ref().map(|last| {
        format!(
            "replaced {} time(s) after a fatal error; the last: {last}",
            health.recreated
        )
    });
    match health.broken {
        None => Json(Health {
            status: "ok",
            reason: None,
            broker: None,
            producer,
        })
        .into_response(),
        Some(fatal) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable",
                reason: Some(format!("producer: fatal error, not replaced: {fatal}")),
                broker: None,
                producer,
            }),
        )
            .into_response(),
    }
}

/// Readiness
///
/// The service can serve its API: the database answers within 2 s. The
/// broker's state is reported in `broker` (as last seen, checked in the
/// background) and does not make the service unready: while the broker is
/// down, what the API accepts waits in the outbox.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses(
        (status = 200, description = "ready; `broker` says whether the broker answers", body = Health),
        (status = 503, description = "unavailable: the database does not answer", body = Health),
    ))]
pub(crate) async fn readyz(State(r): State<Readiness>) -> Response {
    let broker = Some(crate::probe::describe(r.broker.seen()));
    match r.check().await {
        Ok(()) => Json(Health {
            status: "ready",
            reason: None,
            broker,
            producer: None,
        })
        .into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable",
                reason: Some(reason),
                broker,
                producer: None,
            }),
        )
            .into_response(),
    }
}

/// Serves `router` until `shutdown`, finishing in-flight requests; over
/// TLS when `tls` is given; within the limits of `settings`
/// ([`crate::server`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    settings: crate::server::Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    match tls {
        Some(acceptor) => {
            let listener = crate::tls::TlsListener::new(listener, acceptor)?;
            crate::server::run(listener, router, settings, shutdown).await
        }
        None => crate::server::run(listener, router, settings, shutdown).await,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::{
        extract::Path,
        http::{HeaderMap, Request},
        middleware,
    };
    use tower::ServiceExt as _;

    use super::*;

    async fn call(req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        // A path from a variable: the registry test reads the services' routes
        // from `.route("...` in the sources, and this one is no service's.
        let path = "/things/{n}";
        let app = Router::new()
            .route(path, get(|Path(n): Path<u32>| async move { n.to_string() }))
            .layer(middleware::from_fn_with_state(
                TraceTrust::default(),
                request_context,
            ));
        let resp = app.oneshot(req).await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = axum::body::to_bytes(resp.into_body(), 64 * 1024).await.unwrap();
        (
            status,
            headers,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn an_extractors_own_refusal_reaches_the_client_as_the_error_envelope() {
        let req = Request::get("/things/abc")
            .header("x-request-id", "r-1")
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = call(req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(
            (&body["code"], &body["request_id"]),
            (&json!("bad_request"), &json!("r-1"))
        );
        assert!(body["message"].as_str().unwrap().contains("abc"), "{body}");

        let req = Request::post("/things/1").body(Body::empty()).unwrap();
        let (status, headers, body) = call(req).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["code"], "method_not_allowed");
        assert!(headers["allow"].to_str().unwrap().contains("GET"), "{headers:?}");

        // A control character in a query parameter, or an invalid request
        // id, is refused before any handler: a 400, never a 500.
        let req = Request::get("/things/1?method=a%00b")
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = call(req).await;
        assert_eq!(
            (status, &body["code"]),
            (StatusCode::BAD_REQUEST, &json!("bad_request"))
        );
        assert_eq!(body["request_id"], headers["x-request-id"].to_str().unwrap());
        let req = Request::get("/things/1")
            .header("x-request-id", "r".repeat(129))
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = call(req).await;
        assert_eq!(
            (status, &body["code"]),
            (StatusCode::BAD_REQUEST, &json!("invalid_request_id"))
        );
        assert_eq!(headers["x-request-id"].len(), 36, "a generated one is echoed");

        // An answer that is not a refusal is left as it is.
        let (status, _, body) = call(Request::get("/things/7").body(Body::empty()).unwrap()).await;
        assert_eq!((status, body), (StatusCode::OK, json!(7)));
    }
}
