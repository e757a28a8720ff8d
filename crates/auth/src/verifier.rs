//! Checking a bearer token against the keys of a JWKS.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use jsonwebtoken::{
    decode, decode_header,
    errors::ErrorKind,
    jwk::{JwkSet, KeyAlgorithm},
    Algorithm, DecodingKey, Validation,
};
use serde::Deserialize;

use crate::Scope;

/// The verified caller: its subject and scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub scopes: Vec<Scope>,
}

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Whether the caller is one of the services (holds a [`Scope::SERVICE`]).
    pub fn is_service(&self) -> bool {
        Scope::SERVICE.iter().any(|s| self.has(*s))
    }
}

/// Why a token was refused; the message is safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token names no key this service knows (kid)")]
    UnknownKey,
    #[error("the token's algorithm is not the one of its key")]
    WrongAlgorithm,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by someone else")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("the token's claims are invalid: {0}")]
    BadClaims(String),
}

/// Checks tokens: one key per `kid`, each with the one algorithm it allows.
pub struct Verifier {
    keys: HashMap<String, (DecodingKey, Algorithm)>,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("Verifier")
            .field("kids", &kids)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    scope: String,
}

impl Verifier {
    /// The keys of `jwks` (a JSON Web Key Set). Every key needs a `kid` and
    /// an `alg` (EdDSA, RS256 or ES256); symmetric keys are refused.
    pub fn from_jwks(jwks: &str, issuer: &str, audience: &str) -> Result<Self> {
        crate::crypto::install();
        let set: JwkSet = serde_json::from_str(jwks).context("the JWKS is not a JSON Web Key Set")?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone().context("a JWKS key has no kid")?;
            let algorithm = match jwk.common.key_algorithm {
                Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
                Some(KeyAlgorithm::RS256) => Algorithm::RS256,
                Some(KeyAlgorithm::ES256) => Algorithm::ES256,
                Some(other) => {
                    bail!("JWKS key {kid}: algorithm {other:?} is not accepted (EdDSA, RS256, ES256)")
                }
                None => bail!("JWKS key {kid} has no alg: each key must pin its algorithm"),
            };
            let key = DecodingKey::from_jwk(jwk).with_context(|| format!("JWKS key {kid}"))?;
            if keys.insert(kid.clone(), (key, algorithm)).is_some() {
                bail!("the JWKS has two keys with kid {kid}");
            }
        }
        if keys.is_empty() {
            bail!("the JWKS has no keys");
        }
        Ok(Self {
            keys,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    /// The caller `token` proves, or why it proves nothing.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        let kid = header.kid.as_deref().ok_or(AuthError::UnknownKey)?;
        let (key, algorithm) = self.keys.get(kid).ok_or(AuthError::UnknownKey)?;
        if header.alg != *algorithm {
            return Err(AuthError::WrongAlgorithm);
        }
        let mut validation = Validation::new(*algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        let data = decode::<Claims>(token, key, &validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::InvalidAudience => AuthError::WrongAudience,
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::InvalidAlgorithm => AuthError::WrongAlgorithm,
            ErrorKind::MissingRequiredClaim(c) => AuthError::BadClaims(format!("{c} is missing")),
            ErrorKind::Json(_) => AuthError::BadClaims("they are not the expected JSON".into()),
            _ => AuthError::Malformed,
        })?;
        let subject = data.claims.sub;
        if subject.is_empty() || subject.len() > 128 {
            return Err(AuthError::BadClaims("sub must have 1 to 128 characters".into()));
        }
        // Unknown scopes grant nothing (another system's scopes may ride along).
        let mut scopes: Vec<Scope> = data
            .claims
            .scope
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect();
        scopes.sort();
        scopes.dedup();
        Ok(Principal { subject, scopes })
    }
}
