//! The HTTP client every outbound call is made with (webhooks, payment to
//! order, order to the warehouse, the CLI): HTTPS with rustls and the ring
//! provider, as the listener ([`crate::edge::tls`]), trusting the system's CAs and
//! those of `TLS_CA_FILE` (PEM), e.g. a private CA the services' certificates
//! are issued by. A `TLS_CA_FILE` that cannot be read or holds no
//! certificate stops the service at start, naming the variable and the file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tokio_rustls::rustls::{
    pki_types::{pem::PemObject, CertificateDer},
    RootCertStore,
};

/// The CA certificates an outbound HTTPS call trusts besides the system's.
#[derive(Clone, Default)]
pub struct Trust {
    /// Where the extra CAs come from (`TLS_CA_FILE`); `None`: the system's only.
    ca_file: Option<PathBuf>,
    extra: Vec<reqwest::Certificate>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("ca_file", &self.ca_file)
            .field("extra_cas", &self.extra.len())
            .finish()
    }
}

impl Trust {
    /// The system's CAs only.
    pub fn system() -> Self {
        Self::default()
    }

    /// `TLS_CA_FILE` as `var` gives it: the system's CAs and the file's, or
    /// the system's alone when it is unset.
    pub fn from_vars(var: impl Fn(&str) -> Result<Option<String>>) -> Result<Self> {
        match var("TLS_CA_FILE")? {
            None => Ok(Self::system()),
            Some(path) if path.trim().is_empty() => Ok(Self::system()),
            Some(path) => Self::ca_file(Path::new(path.trim()))
                .map_err(|e| anyhow::anyhow!("TLS_CA_FILE={}: {e:#}", path.trim())),
        }
    }

    /// The system's CAs and those of the PEM file `path`, which must hold
    /// at least one certificate.
    pub fn ca_file(path: &Path) -> Result<Self> {
        let pem = std::fs::read(path).context("the CA file cannot be read")?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .context("the CA file is not PEM")?;
        anyhow::ensure!(
            !certs.is_empty(),
            "the CA file holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        );
        // Each must be a certificate rustls can anchor trust in, checked now
        // rather than at the first call.
        let mut roots = RootCertStore::empty();
        for (n, cert) in certs.iter().enumerate() {
            roots.add(cert.clone()).with_context(|| {
                format!(
                    "certificate {} of the CA file is not a usable CA certificate",
                    n + 1
                )
            })?;
        }
        let extra = certs
            .iter()
            .map(|c| reqwest::Certificate::from_der(c))
            .collect::<Result<_, _>>()
            .context("the CA file's certificates")?;
        Ok(Self {
            ca_file: Some(path.to_owned()),
            extra,
        })
    }

    /// Where the extra CAs come from, if anywhere.
    pub fn ca_file_path(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// A client builder with rustls (ring), the system's CAs and these; the
    /// caller adds its timeout and headers.
    pub fn builder(&self) -> reqwest::ClientBuilder {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_native_certs(true);
        for cert in &self.extra {
            builder = builder.add_root_certificate(cert.clone());
        }
        builder
    }
}

/// `e` and its causes, e.g. "error sending request for url (...): client
/// error (Connect): invalid peer certificate: UnknownIssuer": reqwest's own
/// message does not say why.
pub fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        source = cause.source();
    }
    text
}

/// Sends `request` on `client` in a client span named `METHOD template`
/// (`template` the route's, e.g. `/v1/internal/orders/{id}/payment-methods/{attempt}`,
/// so names stay few), by OpenTelemetry's HTTP client conventions, with the
/// span's W3C trace context in `traceparent` and `tracestate`: a service
/// that trusts the caller ([`crate::edge::context::TraceTrust`]: a token with
/// a service scope) continues the caller's trace, so the call and its
/// answer stay in the order's trace.
pub async fn send_traced(
    client: &reqwest::Client,
    mut request: reqwest::Request,
    template: &str,
) -> reqwest::Result<reqwest::Response> {
    use tracing::Instrument as _;
    let method = request.method().as_str().to_owned();
    let url = request.url();
    let span = tracing::info_span!(
        "http client",
        otel.name = %format!("{method} {template}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        url.template = template,
        server.address = url.host_str().unwrap_or(""),
        server.port = url.port_or_known_default().map_or(0, i64::from),
        http.response.status_code = tracing::field::Empty,
    );
    let trace = span.in_scope(crate::es::event::TraceContext::current);
    let headers = request.headers_mut();
    for (name, value) in [
        ("traceparent", trace.traceparent),
        ("tracestate", trace.tracestate),
    ] {
        if let Some(value) = value.and_then(|v| reqwest::header::HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    }
    let answer = client.execute(request).instrument(span.clone()).await;
    match &answer {
        Ok(resp) => {
            span.record("http.response.status_code", resp.status().as_u16());
            if resp.status().is_server_error() {
                span.record("otel.status_code", "ERROR");
            }
        }
        Err(_) => {
            span.record("otel.status_code", "ERROR");
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("omnisaga-ca-{}-{name}", rand::random::<u64>()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn vars(path: &Path) -> impl Fn(&str) -> Result<Option<String>> + '_ {
        move |name| Ok((name == "TLS_CA_FILE").then(|| path.display().to_string()))
    }

    #[test]
    fn a_ca_file_that_is_missing_or_holds_no_certificate_is_refused_naming_the_variable_and_the_file() {
        let missing = std::env::temp_dir().join("omnisaga-no-such-ca.pem");
        let e = format!("{:#}", Trust::from_vars(vars(&missing)).unwrap_err());
        assert!(
            e.contains("TLS_CA_FILE=") && e.contains(&missing.display().to_string()),
            "{e}"
        );
        assert!(e.contains("cannot be read"), "{e}");

        let empty = temp_file("empty.pem", b"no certificate in here\n");
        let e = format!("{:#}", Trust::from_vars(vars(&empty)).unwrap_err());
        assert!(
            e.contains(&empty.display().to_string()) && e.contains("holds no PEM certificate"),
            "{e}"
        );

        let garbage = temp_file(
            "garbage.pem",
            b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
        );
        let e = format!("{:#}", Trust::from_vars(vars(&garbage)).unwrap_err());
        assert!(e.contains("not a usable CA certificate"), "{e}");
        for path in [empty, garbage] {
            std::fs::remove_file(path).unwrap();
        }
    }

    #[test]
    fn without_tls_ca_file_the_system_cas_are_trusted_and_a_client_builds() {
        let trust = Trust::from_vars(|_| Ok(None)).unwrap();
        assert!(trust.ca_file_path().is_none());
        trust.builder().build().unwrap();
    }
}
