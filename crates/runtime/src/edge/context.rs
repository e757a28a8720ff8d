//! The request-id and trace-context middleware every route runs behind:
//! request id and trace context in, request id out, one span per request,
//! each error logged once and put in the error envelope
//! ([`crate::edge::http::ApiError`]).

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{MatchedPath, Request, State},
    http::{header::HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    edge::http::{ApiError, RequestId},
    es::event::TraceContext,
};

/// Whose trace context a request continues. Every API is a public edge: a
/// request starts a trace of its own and keeps the client's `traceparent`
/// as a span link, so no client can switch sampling off for a saga or merge
/// orders into one trace. Only a caller with a service identity (a token
/// holding a service scope, [`omnisaga_auth::Scope::SERVICE`]) continues its trace, as the
/// services calling each other do.
#[derive(Clone, Default)]
pub struct TraceTrust {
    /// Checks the tokens; without it no request continues a trace.
    pub verifier: Option<Arc<omnisaga_auth::Verifier>>,
}

impl TraceTrust {
    /// Whether `req`'s bearer token is valid and holds a service scope.
    fn continues(&self, req: &Request) -> bool {
        let Some(verifier) = &self.verifier else {
            return false;
        };
        crate::edge::auth::bearer(req)
            .and_then(|token| verifier.verify(token))
            .is_ok_and(|p| p.is_service())
    }
}

/// Middleware: request id and trace context in, request id out, one span per
/// request (probes and scrapes excepted), each error logged once, with its
/// cause, and the request id put in its body. The client's trace context is
/// continued or only linked as [`TraceTrust`] says.
pub async fn request_context(State(trust): State<TraceTrust>, mut req: Request, next: Next) -> Response {
    let given = crate::edge::input::request_id(req.headers());
    let request_id = given
        .clone()
        .ok()
        .flatten()
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    if let Some(err) = given
        .err()
        .or_else(|| crate::edge::input::control_character(req.uri()))
    {
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
        omnisaga.db.statement_count = tracing::field::Empty,
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
    req.extensions_mut().insert(trace.clone());
    let mut resp = crate::base::db::counted(&span, next.run(req))
        .instrument(span.clone())
        .await;
    if (resp.status().is_client_error() || resp.status().is_server_error())
        && resp.extensions().get::<ApiError>().is_none()
        && !is_json(&resp)
    {
        resp = enveloped(resp).await;
    }
    span.record("http.response.status_code", resp.status().as_u16());
    let status = resp.status().as_u16().to_string();
    let m = crate::base::metrics::get();
    m.http_requests
        .with_label_values(&[route.as_str(), method.as_str(), status.as_str()])
        .inc();
    // With the request's trace as its bucket's exemplar.
    m.exemplars.observe(
        &m.http_duration,
        &[route.as_str(), method.as_str(), status.as_str()],
        started.elapsed().as_secs_f64(),
        sampled_trace_id(&trace),
    );
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

/// The trace id of `trace` when its flags say it is sampled: an exemplar
/// names only a trace the trace viewer gets.
fn sampled_trace_id(trace: &TraceContext) -> Option<&str> {
    let flags = trace.traceparent.as_deref()?.rsplit('-').next()?;
    let sampled = u8::from_str_radix(flags, 16).is_ok_and(|f| f & 1 == 1);
    sampled.then(|| trace.trace_id()).flatten()
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

#[cfg(test)]
mod tests {
    use axum::{
        extract::Path,
        http::{HeaderMap, Request},
        middleware,
    };
    use axum::{routing::get, Router};
    use serde_json::{json, Value};
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
    async fn a_handler_that_panics_answers_500_internal_with_the_request_id() {
        // A path from a variable, as in `call`: no service's route.
        let path = "/boom";
        let app = Router::new()
            .route(
                path,
                get(|| async {
                    if true {
                        panic!("an invariant the handler relied on");
                    }
                    "unreachable"
                }),
            )
            .layer(crate::edge::http::catch_panics())
            .layer(middleware::from_fn_with_state(
                TraceTrust::default(),
                request_context,
            ));
        let req = Request::get("/boom")
            .header("x-request-id", "r-9")
            .body(Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(resp.into_body(), 64 * 1024).await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (&body["code"], &body["message"], &body["request_id"]),
            (&json!("internal"), &json!("internal error"), &json!("r-9")),
            "the panic's message is logged, not returned"
        );
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
