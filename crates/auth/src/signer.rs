//! Minting tokens with an Ed25519 key: the local development key and the
//! tests' keys. Production tokens come from the deployment's identity
//! provider; services only ever verify.

use std::{
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use ed25519_dalek::{
    pkcs8::{DecodePrivateKey, EncodePrivateKey},
    SigningKey,
};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::Scope;

/// The issuer and audience of local tokens (the services' defaults).
pub const LOCAL_ISSUER: &str = "omnisaga-local";
pub const LOCAL_AUDIENCE: &str = "omnisaga";

/// An Ed25519 signing key with its `kid`.
pub struct Signer {
    kid: String,
    key: SigningKey,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A new random key named `kid`, signing for the local issuer and audience.
    pub fn generate(kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            key: SigningKey::from_bytes(&rand::random()),
            issuer: LOCAL_ISSUER.into(),
            audience: LOCAL_AUDIENCE.into(),
        }
    }

    /// The key in `dir` (`signing-key.pem`, its JWKS beside it in
    /// `jwks.json`), created with both files when there is none.
    pub fn load_or_create(dir: &Path) -> Result<Self> {
        let pem_path = dir.join("signing-key.pem");
        let signer = if pem_path.exists() {
            let pem = std::fs::read_to_string(&pem_path)
                .with_context(|| format!("reading {}", pem_path.display()))?;
            let key = SigningKey::from_pkcs8_pem(&pem)
                .with_context(|| format!("{} is not an Ed25519 key", pem_path.display()))?;
            Self {
                kid: kid_of(&key),
                key,
                issuer: LOCAL_ISSUER.into(),
                audience: LOCAL_AUDIENCE.into(),
            }
        } else {
            std::fs::create_dir_all(dir)?;
            let key = SigningKey::from_bytes(&rand::random());
            let pem = key.to_pkcs8_pem(Default::default()).context("encoding the key")?;
            write_private(&pem_path, pem.as_bytes())?;
            Self {
                kid: kid_of(&key),
                key,
                issuer: LOCAL_ISSUER.into(),
                audience: LOCAL_AUDIENCE.into(),
            }
        };
        std::fs::write(dir.join("jwks.json"), signer.jwks())?;
        Ok(signer)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The same key signing for another issuer or audience.
    pub fn for_issuer(mut self, issuer: &str, audience: &str) -> Self {
        self.issuer = issuer.to_owned();
        self.audience = audience.to_owned();
        self
    }

    /// The public half as a JWKS document (`alg` pinned to EdDSA).
    pub fn jwks(&self) -> String {
        let x = URL_SAFE_NO_PAD.encode(self.key.verifying_key().to_bytes());
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid, "alg": "EdDSA", "use": "sig"}]})
            .to_string()
    }

    /// A token for `subject` with `scopes`, valid for `ttl` from now.
    pub fn mint(&self, subject: &str, scopes: &[Scope], ttl: Duration) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let scope: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        self.mint_claims(&json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "scope": scope.join(" "),
            "iat": now,
            "nbf": now,
            "exp": now + ttl.as_secs(),
        }))
    }

    /// A token with exactly `claims` (tests make bad ones with it).
    pub fn mint_claims(&self, claims: &serde_json::Value) -> String {
        crate::crypto::install();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let der = self.key.to_pkcs8_der().expect("an Ed25519 key encodes as PKCS#8");
        encode(&header, claims, &EncodingKey::from_ed_der(der.as_bytes())).expect("an Ed25519 key signs")
    }
}

/// A key's `kid`: the start of its public key, so a new key gets a new one.
fn kid_of(key: &SigningKey) -> String {
    let x = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
    format!("local-{}", &x[..12])
}

/// Writes `bytes` to `path` readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::{fs::OpenOptions, io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}
