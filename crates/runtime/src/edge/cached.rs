//! The answer of an anonymous route that costs a database query (`/readyz`,
//! `/metrics`, the analytics dashboard) computed at most once per
//! [`FRESH_FOR`]: the requests in between, and those that come while it is
//! computed, get that same answer, so a flood of them costs the pool one
//! query a second instead of one each. On a router, each route keeps its
//! own answer (by route template, and apart for an `Accept` asking for
//! OpenMetrics):
//! `.route_layer(middleware::from_fn_with_state(Cache::new(), cached))`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::{Body, Bytes},
    extract::{MatchedPath, Request, State},
    http::{HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::edge::http::ApiError;

/// How long an answer is served again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Largest answer kept (a metrics scrape is some hundred kB).
const MAX_BODY: usize = 16 << 20;

/// Each route's last answer, by route template.
#[derive(Default)]
pub struct Cache {
    routes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Kept>>>>>,
}

struct Kept {
    at: Instant,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Kept {
    fn response(&self) -> Response {
        let mut resp = Response::new(Body::from(self.body.clone()));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers.clone();
        resp
    }
}

impl Cache {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }
}

/// Middleware: the route's answer of less than [`FRESH_FOR`] ago, or a new
/// one (computed by one request while the others wait for it). Refusals
/// (an [`ApiError`]) are not kept.
pub async fn cached(State(cache): State<Arc<Cache>>, req: Request, next: Next) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return next.run(req).await;
    }
    let mut route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path(), MatchedPath::as_str)
        .to_owned();
    // `/metrics` answers in two formats, each kept apart.
    if crate::edge::scrape::wants_openmetrics(req.headers()) {
        route.push_str(" (openmetrics)");
    }
    let slot = cache
        .routes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(route)
        .or_default()
        .clone();
    let mut kept = slot.lock().await;
    if let Some(k) = kept.as_ref().filter(|k| k.at.elapsed() < FRESH_FOR) {
        return k.response();
    }
    let resp = next.run(req).await;
    if resp.extensions().get::<ApiError>().is_some() {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(e) => return ApiError::internal(format_args!("reading an answer to keep: {e}")).into_response(),
    };
    let fresh = Kept {
        at: Instant::now(),
        status: parts.status,
        headers: parts.headers,
        body,
    };
    let resp = fresh.response();
    *kept = Some(fresh);
    resp
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::{middleware, routing::get, Router};
    use tower::ServiceExt as _;

    use super::*;

    #[tokio::test]
    async fn a_flood_of_requests_computes_the_answer_once_a_period() {
        let computed = Arc::new(AtomicUsize::new(0));
        let count = computed.clone();
        // Paths from variables: the registry test reads the services' routes
        // from `.route("...` in the sources, and these are no service's.
        let costly = "/costly";
        let app = Router::new()
            .route(
                costly,
                get(move || {
                    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                    async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        (StatusCode::SERVICE_UNAVAILABLE, format!("answer {n}"))
                    }
                }),
            )
            .route_layer(middleware::from_fn_with_state(Cache::new(), cached));
        let call = |app: Router| async move {
            let req = Request::get(costly).body(Body::empty()).unwrap();
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
            (status, String::from_utf8_lossy(&body).into_owned())
        };
        let answers = futures::future::join_all((0..200).map(|_| call(app.clone()))).await;
        assert_eq!(computed.load(Ordering::SeqCst), 1, "200 requests at once");
        assert!(answers
            .iter()
            .all(|a| *a == (StatusCode::SERVICE_UNAVAILABLE, "answer 1".to_owned())));

        tokio::time::sleep(FRESH_FOR).await;
        assert_eq!(
            call(app.clone()).await.1,
            "answer 2",
            "a new answer after {FRESH_FOR:?}"
        );
        assert_eq!(computed.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_openmetrics_answer_is_kept_apart() {
        let path = "/m";
        let app = Router::new()
            .route(
                path,
                get(|headers: HeaderMap| async move {
                    let open = crate::edge::scrape::wants_openmetrics(&headers);
                    if open {
                        "openmetrics"
                    } else {
                        "classic"
                    }
                }),
            )
            .route_layer(middleware::from_fn_with_state(Cache::new(), cached));
        for (accept, want) in [
            ("text/plain", "classic"),
            ("application/openmetrics-text", "openmetrics"),
            ("*/*", "classic"),
            ("application/openmetrics-text;version=1.0.0", "openmetrics"),
        ] {
            let req = Request::get(path)
                .header("accept", accept)
                .body(Body::empty())
                .unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
            assert_eq!(&body[..], want.as_bytes(), "Accept: {accept}");
        }
    }

    #[tokio::test]
    async fn each_route_keeps_its_own_answer() {
        let (a, b) = ("/a", "/b");
        let app = Router::new()
            .route(a, get(|| async { "a" }))
            .route(b, get(|| async { "b" }))
            .route_layer(middleware::from_fn_with_state(Cache::new(), cached));
        for path in [a, b, a, b] {
            let req = Request::get(path).body(Body::empty()).unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
            assert_eq!(&body[..], &path.as_bytes()[1..]);
        }
    }
}
