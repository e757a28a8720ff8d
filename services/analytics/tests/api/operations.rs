//! What every service answers besides its own API, checked on analytics,
//! whose own API is one read: probes, metrics, consumer progress and the
//! error envelope of a request nothing answers.

use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_probes_say_alive_and_ready_with_the_database_and_broker_up() {
    let app = spawn_app().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let ready = ready.json::<Value>().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert!(
        ready["broker"].is_string(),
        "the broker's state beside it: {ready}"
    );
}

#[tokio::test]
async fn metrics_count_the_summary_requests_by_route() {
    let app = spawn_app().await;
    app.summary().await;
    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("http_server_requests_total")
            && l.contains(r#"route="/v1/summary""#)
            && l.contains(r#"status="200""#)),
        "{text}"
    );
    assert!(text.contains("omnisaga_outbox_backlog"), "{text}");
}

#[tokio::test]
async fn metrics_show_the_process_cpu_memory_and_descriptors_and_the_build() {
    let app = spawn_app().await;
    let text = app.get("/metrics").await.text().await.unwrap();
    let value = |name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .unwrap_or_else(|| panic!("no {name} in {text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("process_cpu_seconds_total") > 0.0);
    assert!(value("process_resident_memory_bytes") > 1_000_000.0);
    assert!(value("process_open_fds") >= 3.0);
    let build = text
        .lines()
        .find(|l| l.starts_with("omnisaga_build_info{"))
        .unwrap_or_else(|| panic!("no build info in {text}"));
    assert!(
        build.contains(&format!(r#"version="{}""#, env!("CARGO_PKG_VERSION"))) && build.ends_with(" 1"),
        "{build}"
    );
}

#[tokio::test]
async fn the_consumer_reports_its_group() {
    let app = spawn_app().await;
    let resp = app
        .http
        .get(format!("{}/v1/admin/consumers", app.admin_url))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let consumers = body["consumers"].as_array().expect("consumers");
    assert_eq!(consumers.len(), 1, "{body}");
    assert_eq!(consumers[0]["name"], "analytics");
    assert_eq!(
        consumers[0]["group"],
        format!("{}analytics", app.kafka.topic_prefix)
    );
}

#[tokio::test]
async fn an_unknown_route_gets_the_error_envelope_with_the_request_id() {
    let app = spawn_app().await;
    let resp = app.get("/v1/summaries").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-request-id"], "test-request");
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"code": "not_found", "message": "no such route", "request_id": "test-request"})
    );
}

/// A self-signed certificate for localhost in `dir`: (cert.pem, key.pem, the certificate).
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, rcgen::Certificate) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key, made.cert)
}

#[tokio::test]
async fn with_a_certificate_configured_the_service_speaks_https_and_only_https() {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::{self, pki_types::ServerName};

    let dir = std::env::temp_dir().join(format!("omnisaga-tls-{}", uuid::Uuid::new_v4().simple()));
    let (cert, key, certificate) = certificate(&dir);
    let app = crate::helpers::spawn_app_with(|c| {
        c.tls = Some(omnisaga_runtime::tls::TlsFiles { cert, key });
    })
    .await;
    let addr = app.url.trim_start_matches("http://").to_owned();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate.der().clone()).unwrap();
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("a TLS handshake with the test's certificate");
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#"{"status":"ok"}"#), "{answer}");

    let plain = reqwest::get(format!("http://{addr}/healthz")).await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
