//! Calls to the services' HTTP APIs, their error envelope turned into a
//! clear message.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::settings::Settings;

/// What a service answered that was not a success.
#[derive(Debug)]
pub enum Failure {
    /// No answer at all: not running, or the wrong URL.
    Unreachable(String),
    /// An answer with a status other than 2xx, and the error's message.
    Status(reqwest::StatusCode, String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unreachable(e) => write!(f, "no answer ({e})"),
            Failure::Status(status, message) => write!(f, "{status}: {message}"),
        }
    }
}

/// An HTTP client with a timeout, sending the settings' token as the
/// bearer, for every command; `https://` services' certificates are checked
/// against the system's CAs and `TLS_CA_FILE`'s.
pub fn client(settings: &Settings) -> Result<reqwest::Client> {
    let trust = settings.http_trust()?;
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = settings.token.as_deref() {
        let mut value: reqwest::header::HeaderValue = format!("Bearer {token}")
            .parse()
            .context("the token is not a valid header value")?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    trust
        .builder()
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .context("Failed to build the HTTP client")
}

/// Sends `req` and returns its JSON body, or why not.
pub async fn try_call(req: reqwest::RequestBuilder) -> Result<Value, Failure> {
    let resp = req
        .send()
        .await
        .map_err(|e| Failure::Unreachable(source_chain(&e)))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["message"].as_str().unwrap_or("request failed").to_owned();
        return Err(Failure::Status(status, message));
    }
    Ok(body)
}

/// Sends `req` to `service` and returns its JSON body; every failure is an error.
pub async fn call(service: &str, req: reqwest::RequestBuilder) -> Result<Value> {
    match try_call(req).await {
        Ok(body) => Ok(body),
        Err(Failure::Unreachable(e)) => {
            bail!(
                "{service} did not answer (is the stack running? set {}_URL): {e}",
                service.to_uppercase()
            )
        }
        Err(failure) => bail!("{service} answered {failure}"),
    }
}

/// The error and its causes in one line (reqwest's own Display hides the cause).
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use omnisaga_runtime::testing::https::TestCa;
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn a_service_behind_https_answers_when_tls_ca_file_names_its_ca_and_a_missing_file_is_an_error_naming_it(
    ) {
        let ca = TestCa::new().unwrap();
        let app = axum::Router::new().route(
            "/v1/ping",
            axum::routing::get(|| async { axum::Json(json!({"ok": true})) }),
        );
        let url = ca.serve(app).await.unwrap();
        let trusting = Settings::for_tests().with_file_var("TLS_CA_FILE", &ca.ca_file.display().to_string());
        let c = client(&trusting).unwrap();
        let body = call("order", c.get(format!("{url}/v1/ping"))).await.unwrap();
        assert_eq!(body, json!({"ok": true}));

        let system_only = client(&Settings::for_tests()).unwrap();
        let e = call("order", system_only.get(format!("{url}/v1/ping")))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("certificate"), "{e}");

        let missing = Settings::for_tests().with_file_var("TLS_CA_FILE", "/nonexistent/ca.pem");
        let e = client(&missing).unwrap_err().to_string();
        assert!(e.contains("TLS_CA_FILE=/nonexistent/ca.pem"), "{e}");
    }
}
