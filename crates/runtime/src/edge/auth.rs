//! Who is calling: the middleware that checks every request's bearer token
//! (all but the probes and the metrics), the [`Caller`] extractor handlers
//! take, and [`require_scope`], a route layer that lets only the holders of a
//! scope through (`routes::Routes` puts it on every route). `admin` is one
//! scope among the others: it opens the operators' routes, and lets its
//! holder see every customer's orders where a route's scope already let them
//! in ([`Caller::owns`]), but passes no other scope check.

use std::sync::Arc;

use axum::{
    extract::{FromRequestParts, Request, State},
    http::{header::AUTHORIZATION, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use omnisaga_auth::{AuthError, Principal, Scope, Verifier};

use crate::edge::http::ApiError;

/// Paths anyone may call: probes and the metrics scrape.
pub const OPEN_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// What [`authenticate`] checks against: the verifier, and the paths open
/// to anyone ([`OPEN_PATHS`] and those a service adds).
#[derive(Clone)]
pub struct Gate {
    pub verifier: Arc<Verifier>,
    pub open: Vec<&'static str>,
    /// Where failed authentications are recorded (none: not recorded).
    pub audit: Option<Arc<crate::edge::audit::Audit>>,
}

/// Middleware: the request's bearer token verified, its [`Principal`] put
/// in the request; a missing or bad token answers 401 and is audited.
pub async fn authenticate(State(gate): State<Arc<Gate>>, mut req: Request, next: Next) -> Response {
    if gate.open.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    match bearer(&req).and_then(|token| gate.verifier.verify(token)) {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(why) => {
            if let Some(audit) = &gate.audit {
                let failed = crate::edge::audit::FailedAuthentication::of(&req, &why);
                audit.failed_authentication(failed).await;
            }
            ApiError::unauthorized(&why).into_response()
        }
    }
}

pub(crate) fn bearer(req: &Request) -> Result<&str, AuthError> {
    let header = req.headers().get(AUTHORIZATION).ok_or(AuthError::Missing)?;
    let value = header.to_str().map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing);
    }
    Ok(token.trim())
}

/// The verified caller of a request, for handlers.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Caller {
    /// The caller's subject: for a customer, the customer id.
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// Whether the caller is an operator (`admin`), who may see every order.
    pub fn is_admin(&self) -> bool {
        self.0.has(Scope::Admin)
    }

    /// `Ok` when the caller holds `scope`, else 403 (`admin` is no other scope).
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.has(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(scope))
        }
    }

    /// Whether the caller may see what belongs to `owner`.
    pub fn owns(&self, owner: &str) -> bool {
        self.is_admin() || self.subject() == owner
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ApiError::unauthorized(&AuthError::Missing))
    }
}

/// Middleware for a route layer: only callers holding the state's scope
/// reach the route, the others get 403. `routes::Routes::route` puts it on
/// every route it declares, with the route's scope.
pub async fn require_scope(State(scope): State<Scope>, caller: Caller, req: Request, next: Next) -> Response {
    match caller.require(scope) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}
