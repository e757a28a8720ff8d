//! Trace context from outside is not trusted: a request starts a trace of
//! its own and keeps the client's `traceparent` as a link, whatever the
//! client's sampling flag; only a caller whose verified token holds a
//! service scope continues its trace, and a call made with
//! `http_client::send_traced` carries its trace there.

use std::sync::{Arc, Mutex};

use axum::{body::Body, extract::Request, middleware, routing::get, Extension, Router};
use omnisaga_auth::Scope;
use omnisaga_runtime::{context, testing, TraceContext};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{
    error::OTelSdkResult,
    trace::{SdkTracerProvider, SpanData, SpanExporter},
};
use tower::ServiceExt as _;
use tracing_subscriber::prelude::*;

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// The client's context, not sampled: it asks for no trace at all.
fn traceparent(sampled: bool) -> String {
    format!(
        "00-{CLIENT_TRACE}-00f067aa0ba902b7-{}",
        if sampled { "01" } else { "00" }
    )
}

/// Keeps every span exported.
#[derive(Debug, Clone, Default)]
struct Kept(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Kept {
    fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.0.lock().unwrap().extend(batch);
        async { Ok(()) }
    }
}

/// A request with `token` and `traceparent`: the trace id the handler ran
/// in, and the request's exported span, if it was sampled.
async fn request(token: Option<String>, traceparent: String) -> (String, Option<SpanData>) {
    let kept = Kept::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(kept.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _default = tracing::subscriber::set_default(subscriber);
    let trust = context::TraceTrust {
        verifier: Some(testing::auth::config().verifier),
    };
    let app = Router::new()
        .route(
            "/t",
            get(|Extension(t): Extension<TraceContext>| async move {
                t.trace_id().unwrap_or_default().to_owned()
            }),
        )
        .layer(middleware::from_fn_with_state(trust, context::request_context));
    let mut req = Request::get("/t").header("traceparent", traceparent);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
    let span = kept
        .0
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.name == "GET /t")
        .cloned();
    (String::from_utf8(body.to_vec()).unwrap(), span)
}

#[tokio::test]
async fn a_customers_traceparent_is_a_link_of_a_new_sampled_trace() {
    let (trace, span) = request(Some(testing::auth::customer_token("c-1")), traceparent(false)).await;
    assert_eq!(trace.len(), 32, "{trace}");
    assert_ne!(trace, CLIENT_TRACE, "the client chose the trace");
    let span = span.expect("the client's sampling flag switched the trace off");
    assert!(
        span.parent_span_id == opentelemetry::trace::SpanId::INVALID,
        "not a root"
    );
    let links: Vec<String> = span
        .links
        .links
        .iter()
        .map(|l| l.span_context.trace_id().to_string())
        .collect();
    assert_eq!(links, [CLIENT_TRACE], "the client's context is kept as a link");
}

#[tokio::test]
async fn without_a_token_or_with_a_forged_one_the_trace_is_new() {
    let (trace, _) = request(None, traceparent(true)).await;
    assert_ne!(trace, CLIENT_TRACE);
    let forged = omnisaga_auth::Signer::generate("test").mint(
        "svc",
        &[Scope::PaymentMethodsRead],
        std::time::Duration::from_secs(60),
    );
    let (trace, _) = request(Some(forged), traceparent(true)).await;
    assert_ne!(trace, CLIENT_TRACE, "a token of another key continued the trace");
    let (trace, _) = request(Some(testing::auth::admin_token()), traceparent(true)).await;
    assert_ne!(trace, CLIENT_TRACE, "an operator is not a service");
}

#[tokio::test]
async fn a_service_continues_its_trace() {
    for scope in omnisaga_auth::Scope::SERVICE {
        let token = testing::auth::token("payment", &[scope]);
        let (trace, span) = request(Some(token), traceparent(true)).await;
        assert_eq!(trace, CLIENT_TRACE, "{scope}");
        assert!(span.is_some_and(|s| s.links.links.is_empty()));
    }
}

#[tokio::test]
async fn a_services_call_made_with_send_traced_is_answered_in_its_trace() {
    use opentelemetry::trace::SpanKind;
    use tracing::Instrument as _;
    let kept = Kept::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(kept.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    // One thread (the test's runtime): the server's task sees the subscriber too.
    let _default = tracing::subscriber::set_default(subscriber);
    let trust = context::TraceTrust {
        verifier: Some(testing::auth::config().verifier),
    };
    let app = Router::new()
        .route("/t/{id}", get(|| async { "ok" }))
        .layer(middleware::from_fn_with_state(trust, context::request_context));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/t/1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = reqwest::Client::new();
    let token = testing::auth::token("payment-service", &[Scope::PaymentMethodsRead]);
    let request = client.get(&url).bearer_auth(token).build().unwrap();
    let caller = tracing::info_span!("caller");
    let resp = omnisaga_runtime::http_client::send_traced(&client, request, "/t/{id}")
        .instrument(caller)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let spans = kept.0.lock().unwrap().clone();
    let find = |name: &str, kind: SpanKind| {
        let found = spans.iter().find(|s| s.name == name && s.span_kind == kind);
        found.cloned().unwrap_or_else(|| {
            let names: Vec<_> = spans.iter().map(|s| (&s.name, &s.span_kind)).collect();
            panic!("no {kind:?} span {name:?} among {names:?}")
        })
    };
    let caller = find("caller", SpanKind::Internal);
    let call = find("GET /t/{id}", SpanKind::Client);
    let answer = find("GET /t/{id}", SpanKind::Server);
    assert_eq!(call.parent_span_id, caller.span_context.span_id());
    assert_eq!(
        answer.span_context.trace_id(),
        caller.span_context.trace_id(),
        "the answer started a trace of its own"
    );
    assert_eq!(
        answer.parent_span_id,
        call.span_context.span_id(),
        "the answer is not a child of the call"
    );
}
