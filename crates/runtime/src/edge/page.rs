//! HTML pages (`/docs`, the analytics dashboard) with the headers a browser
//! needs to keep them to themselves: a Content-Security-Policy that loads
//! nothing from elsewhere, runs only the page's own script (by a nonce
//! fresh per answer), and lets no other site frame it; `nosniff`; no
//! referrer; never cached stale.

use axum::{
    http::{header, HeaderValue},
    response::{Html, IntoResponse, Response},
};

/// A page's one-time nonce, for `<script nonce="...">` in its HTML.
#[derive(Debug, Clone)]
pub struct Nonce(String);

impl Nonce {
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Nonce {
    fn default() -> Self {
        Self::new()
    }
}

/// `html` as a page whose scripts run only with `nonce`.
pub fn html(html: String, nonce: &Nonce) -> Response {
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; script-src 'nonce-{}'; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        nonce.as_str()
    );
    let mut resp = Html(html).into_response();
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_runs_only_its_own_script_and_cannot_be_framed() {
        let nonce = Nonce::new();
        let resp = html("<p>hi</p>".into(), &nonce);
        let h = resp.headers();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains(&format!("script-src 'nonce-{}'", nonce.as_str())),
            "{csp}"
        );
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_ne!(Nonce::new().as_str(), nonce.as_str(), "fresh per answer");
    }
}
