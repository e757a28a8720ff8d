//! Tokens for tests: one signing key per test process, whose JWKS every
//! test service is configured with ([`config`]).

use std::{
    sync::{Arc, LazyLock},
    time::Duration,
};

use omnisaga_auth::{Scope, Signer, Verifier, LOCAL_AUDIENCE, LOCAL_ISSUER};

use crate::boot::config::AuthConfig;

static SIGNER: LazyLock<Signer> = LazyLock::new(|| Signer::generate("test"));

/// The tests' signing key.
pub fn signer() -> &'static Signer {
    &SIGNER
}

/// The auth settings of a test service: the tests' key.
pub fn config() -> AuthConfig {
    let verifier =
        Verifier::from_jwks(&SIGNER.jwks(), LOCAL_ISSUER, LOCAL_AUDIENCE).expect("the tests' JWKS");
    AuthConfig {
        verifier: Arc::new(verifier),
    }
}

/// A token for `subject` with `scopes`, valid for an hour.
pub fn token(subject: &str, scopes: &[Scope]) -> String {
    SIGNER.mint(subject, scopes, Duration::from_secs(3600))
}

/// An operator's token (`admin`).
pub fn admin_token() -> String {
    token("test-operator", &[Scope::Admin])
}

/// An operator's token holding `admin` and `scopes` too (`admin` implies
/// no other scope).
pub fn operator_token(scopes: &[Scope]) -> String {
    let mut all = vec![Scope::Admin];
    all.extend_from_slice(scopes);
    token("test-operator", &all)
}

/// A customer's token: read and write their own orders.
pub fn customer_token(customer: &str) -> String {
    token(customer, &[Scope::OrdersRead, Scope::OrdersWrite])
}

/// An HTTP client that sends `token` with every request.
pub fn client_with(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {token}")
        .parse()
        .expect("a token is a header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("an HTTP client")
}
