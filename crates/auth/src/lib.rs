//! Who may call omnisaga's APIs. A caller presents a bearer JWT; a
//! [`Verifier`] built from a JWKS checks its signature with the key its
//! `kid` names (the algorithm pinned to that key's: `none`, HMAC and any
//! other algorithm are refused), its issuer, audience, expiry and
//! not-before, and yields a [`Principal`]: the subject (for a customer, the
//! customer id) and its [`Scope`]s.
//!
//! [`Signer`] mints tokens with an Ed25519 key: the local key `make run`
//! creates ([`Signer::load_or_create`]) and the tests' keys. Keys rotate by
//! `kid`: publish the new key beside the old in the JWKS, sign with the new
//! one, drop the old once its tokens have expired.
//!
//! The signatures are checked with `ring` ([`crypto`]), not jsonwebtoken's
//! RustCrypto backend, which brings the `rsa` crate (RUSTSEC-2023-0071).

mod crypto;
mod scope;
mod signer;
mod verifier;

pub use scope::Scope;
pub use signer::{Signer, LOCAL_AUDIENCE, LOCAL_ISSUER};
pub use verifier::{AuthError, Principal, Verifier};

#[cfg(test)]
mod tests;
